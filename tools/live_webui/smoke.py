#!/usr/bin/env python3
"""Smoke matrix for sd-webui-memstab against a LIVE AUTOMATIC1111 webui (started with --api), over HTTP only.

    python tools/live_webui/smoke.py http://127.0.0.1:7861 [--log SERVER_LOG] [--json OUT.json] [--only 2,4]

Needs Pillow and numpy (the webui's venv has both). Keep the model tiny: every generation is 64x64, 4-6 steps.
With --log, each check scans the part of the server log written during it for tracebacks whose frames name a
memstab file (extension path, lib_memstab, memstab_webui, scripts/memstab.py).

Checks (numbers as in the brief):
 1 start: the server answers, no memstab traceback in the log so far
 2 off: no alwayson_scripts vs args [false] give identical decoded pixels (Euler a, DPM++ 2M, DDIM; batch 2)
 3 calibration via POST /memstab/v1/calibrate (with the references that set each threshold, then again without
   them); GET /memstab/v1/profiles names it under "automatic"
 4 detect: per-image MemStab verdict/score/thresholds; pixels identical to off (Euler a, DPM++ 2M, Heun, DDIM)
 5 mitigate with forced flags (paper and repel): images without "MemStab mitigated steps" identical to off; one changes
 6 the paper rule: works, no "MemStab thresholds"
 7 hires fix and img2img carry per-image MemStab keys ("MemStab hires verdict" for hires)
 8 bad arguments: 200, image returned, "MemStab error" in extra_generation_params, no memstab traceback
 9 hostile routes: huge calibration -> 400 fast; text/plain import -> 4xx; unknown profile -> 404;
   NaN in an imported profile's meta -> 400 and the listing still 200
10 infotext paste-back: txt2img with "infotext" holding "MemStab tau mild: abc" does not answer 500
"""

import argparse
import base64
import copy
import io
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request

SCRIPT = "Memorization guard"
BASE = dict(prompt="a photo of a red house by a lake", negative_prompt="", seed=1234, width=64, height=64,
            steps=4, cfg_scale=7.0, batch_size=2, n_iter=1, send_images=True, save_images=False)
MEMSTAB_FRAME = re.compile(r'File "[^"]*(sd-webui-memstab|lib_memstab|memstab_webui|scripts/memstab\.py|/work/main/)')


class Http:
    def __init__(self, base, timeout=900):
        self.base = base.rstrip("/")
        self.timeout = timeout

    def call(self, method, path, body=None, raw=None, ctype="application/json", timeout=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", ctype)
        t0 = time.time()
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout) as r:
                status, text = r.status, r.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode("utf-8", "replace")
        dt = time.time() - t0
        try:
            js = json.loads(text)
        except ValueError:
            js = None
        return status, js, text, dt


class Log:
    def __init__(self, path):
        self.path = path
        self.pos = 0

    def read_new(self):
        if not self.path:
            return ""
        with open(self.path, "rb") as f:
            f.seek(self.pos)
            data = f.read()
            self.pos += len(data)
        return data.decode("utf-8", "replace")

    @staticmethod
    def tracebacks(text):
        """Traceback blocks, each with the line before it (A1111's "*** message" header), as text. A block ends at
        A1111's "---" line or at the exception line indented like its "Traceback" line."""
        blocks, cur, indent, prev = [], None, 0, ""
        for line in text.splitlines():
            if re.search(r"Traceback \(most recent call last\)", line):
                if cur:
                    blocks.append("\n".join(cur))
                cur, indent = [prev, line], len(line) - len(line.lstrip())
            elif cur is not None:
                cur.append(line)
                lead = len(line) - len(line.lstrip())
                if line.strip() == "---" or (lead <= indent and re.match(r"^[A-Za-z_][\w.]*(:|$)", line.strip())
                                             and len(cur) > 3):
                    blocks.append("\n".join(cur))
                    cur = None
            prev = line
        if cur:
            blocks.append("\n".join(cur))
        return blocks

    def memstab_tracebacks(self, text):
        return [b for b in self.tracebacks(text) if MEMSTAB_FRAME.search(b)]


def pixels(b64):
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64.split(",", 1)[-1]))).convert("RGB"))


def same(a, b):
    return a.shape == b.shape and bool((a == b).all())


def diff(a, b):
    import numpy as np

    if a.shape != b.shape:
        return f"shape {a.shape} vs {b.shape}"
    return f"max|d|={int(np.abs(a.astype(int) - b.astype(int)).max())}"


def infotexts(js):
    info = json.loads(js["info"]) if isinstance(js.get("info"), str) else js.get("info", {})
    return info, info.get("infotexts") or []


def memstab_keys(text):
    """The MemStab key: value pairs of one infotext (values may be quoted)."""
    out = {}
    for m in re.finditer(r'(MemStab [^:,"]+): ("(?:[^"\\]|\\.)*"|[^,]*)', text):
        out[m.group(1).strip()] = m.group(2).strip()
    return out


class Smoke:
    def __init__(self, url, log_path=None):
        self.h = Http(url)
        self.log = Log(log_path)
        self.results = []
        self.off_cache = {}
        self.profile_name = None
        self.detect_infotext = None

    # ---- helpers
    def record(self, num, name, ok, details, tb=None):
        r = {"check": num, "name": name, "pass": bool(ok), "details": details}
        if tb:
            r["memstab_tracebacks"] = tb
        self.results.append(r)
        print(f"[{'PASS' if ok else 'FAIL'}] {num} {name}")
        for d in details:
            print("      " + d)
        for b in tb or []:
            print("      TRACEBACK:\n" + "\n".join("        " + ln for ln in b.splitlines()[-25:]))
        sys.stdout.flush()

    def gen(self, sampler, script_args=None, extra=None, route="txt2img", raw_body=None):
        body = dict(BASE, sampler_name=sampler)
        body.update(extra or {})
        if script_args is not None:
            body["alwayson_scripts"] = {SCRIPT: {"args": script_args}}
        if raw_body is not None:
            return self.h.call("POST", f"/sdapi/v1/{route}", raw=raw_body(body))
        return self.h.call("POST", f"/sdapi/v1/{route}", body)

    def off(self, sampler, extra=None):
        key = (sampler, json.dumps(extra, sort_keys=True))
        if key not in self.off_cache:
            st, js, text, dt = self.gen(sampler, None, extra)
            if st != 200:
                raise RuntimeError(f"guard-off txt2img {sampler} answered {st}: {text[:300]}")
            self.off_cache[key] = [pixels(i) for i in js["images"]]
        return self.off_cache[key]

    def run_check(self, num, name, fn):
        self.log.read_new()
        try:
            ok, details = fn()
        except Exception as e:
            ok, details = False, [f"check raised {type(e).__name__}: {e}"]
        tb = self.log.memstab_tracebacks(self.log.read_new()) if self.log.path else None
        if tb and num == 13:  # the injected fault is reported with its traceback, once: that is the point
            ok = ok and len(tb) == 1 and "fault injected by the live kit" in tb[0]
            details = details + [f"{len(tb)} traceback(s) naming memstab (expected: the injected one, once)"]
            tb = None
        if tb:
            ok = False
            details = details + [f"{len(tb)} traceback(s) naming memstab in the server log"]
        self.record(num, name, ok, details, tb)

    # ---- checks
    def c1(self):
        d, ok = [], True
        st, js, text, dt = self.h.call("GET", "/sdapi/v1/options")
        d.append(f"GET /sdapi/v1/options -> {st}")
        ok &= st == 200
        st, js, text, dt = self.h.call("GET", "/sdapi/v1/scripts")
        names = (js or {}).get("txt2img", []) + (js or {}).get("img2img", [])
        d.append(f"GET /sdapi/v1/scripts -> {st}; 'memorization guard' listed: {'memorization guard' in names}")
        ok &= "memorization guard" in names
        st, js, text, dt = self.h.call("GET", "/memstab/v1/profiles")
        d.append(f"GET /memstab/v1/profiles -> {st}: {text[:300]}")
        ok &= st == 200
        if self.log.path:
            whole = open(self.log.path, encoding="utf-8", errors="replace").read()
            all_tb = self.log.tracebacks(whole)
            mem = self.log.memstab_tracebacks(whole)
            d.append(f"log so far: {len(all_tb)} traceback(s), {len(mem)} naming memstab files")
            for b in all_tb:
                if b not in mem:
                    d.append("other traceback (not memstab): " + " | ".join(b.splitlines()[-3:])[:400])
            if mem:
                ok = False
                d.extend("memstab traceback: " + b[-1500:] for b in mem)
            self.log.pos = len(whole.encode())
        return ok, d

    def against_off(self, sampler, args, d):
        """(guard-off images, images with ``args``, response JSON, seconds) for one sampler, or None when the call
        fails (said in ``d``)."""
        a = self.off(sampler)
        st, js, text, dt = self.gen(sampler, args)
        if st != 200:
            d.append(f"{sampler}: args {args} -> {st} {text[:300]}")
            return None
        return a, [pixels(i) for i in js["images"]], js, dt

    def c2(self):
        d, ok = [], True
        for s in ["Euler a", "DPM++ 2M", "DDIM", "Heun", "UniPC"]:
            got = self.against_off(s, [False], d)
            if got is None:
                ok = False
                continue
            a, b, js, dt = got
            eq = [same(x, y) for x, y in zip(a, b)] if len(a) == len(b) else [False]
            ok &= all(eq) and len(a) == 2
            d.append(f"{s}: {len(a)} vs {len(b)} images, identical per image {eq} "
                     f"{'' if all(eq) else [diff(x, y) for x, y in zip(a, b)]} ({dt:.1f}s)")
        return ok, d

    def c3(self):
        d = []
        req = {"n_prompts": 6, "seeds": 1, "steps": 6, "width": 64, "height": 64, "sampler": "Euler"}
        st, js, text, dt = self.h.call("POST", "/memstab/v1/calibrate", req)
        d.append(f"POST /memstab/v1/calibrate {req} -> {st} in {dt:.1f}s")
        if st != 200:
            d.append(text[:800])
            return False, d
        self.profile_name = js.get("name")
        d.append(f"name={js.get('name')!r} file={js.get('file')!r} generations={js.get('generations')} "
                 f"outliers={js.get('outliers')}")
        meta = js.get("meta") or {}
        d.append("meta: " + json.dumps({k: meta[k] for k in list(meta)[:12]})[:600])
        st, lj, text, dt = self.h.call("GET", "/memstab/v1/profiles")
        auto = (lj or {}).get("automatic") or {}
        d.append(f"GET /memstab/v1/profiles -> {st}; folder={(lj or {}).get('folder')!r}; automatic={auto}")
        plist = (lj or {}).get("profiles", [])
        d.append("profiles: " + str([(p.get("name"), p.get("usable"), p.get("error")) for p in plist]))
        ok = st == 200 and auto.get("name") == self.profile_name and self.profile_name is not None
        ok &= all(k in auto for k in ("name", "note", "reason"))
        # who sets the thresholds: each named by its references, at or above it, and the highest other prompt below
        setters = js.get("threshold_setters") or []
        d.append("threshold setters: " + "; ".join(
            f"{t.get('threshold')} {t.get('value')} by {[b.get('score') for b in t.get('set_by', [])]}, next "
            f"{t.get('next')}" for t in setters))
        ok &= any(t.get("threshold") == "whole-pass score, memorized" for t in setters)
        ok &= all(t.get("set_by") and all(b.get("score") >= t["value"] for b in t["set_by"])
                  and (t.get("next") is None or t["next"] < t["value"]) for t in setters)
        # the report's advice through the API: leave the named prompts out (under another name: check 3's profile
        # stays the one "automatic" picks for the later checks only if this one is deleted again)
        named = list(dict.fromkeys(b["prompt"] for t in setters for b in t.get("set_by", [])))
        st2, js2, _, dt2 = self.h.call("POST", "/memstab/v1/calibrate", {**req, "exclude": named,
                                                                             "name": "memstab-smoke-left-out"})
        left = ((js2 or {}).get("meta") or {}).get("prompts_left_out")
        d.append(f"calibrate leaving out {len(named)} named prompt(s) -> {st2} in {dt2:.1f}s; prompts_left_out "
                 f"{left}, generations {(js2 or {}).get('generations')}")
        ok &= st2 == 200 and left == len(named) and (js2 or {}).get("generations") == req["n_prompts"]
        st3, _, _, _ = self.h.call("DELETE", "/memstab/v1/profiles/memstab-smoke-left-out")
        ok &= st3 == 200
        return ok, d

    def c4(self):
        d, ok = [], True
        for s in ["Euler a", "DPM++ 2M", "Heun", "DDIM"]:
            got = self.against_off(s, [{"mode": "detect"}], d)
            if got is None:
                ok = False
                continue
            a, b, js, dt = got
            info, its = infotexts(js)
            eq = [same(x, y) for x, y in zip(a, b)] if len(a) == len(b) else [False]
            keys = [memstab_keys(t) for t in its]
            have = [all(k in kk for k in ("MemStab verdict", "MemStab score", "MemStab thresholds")) for kk in keys]
            ok &= all(eq) and len(its) == 2 and all(have)
            d.append(f"{s}: identical {eq}; infotexts {len(its)}; has verdict/score/thresholds {have} ({dt:.1f}s)")
            for i, kk in enumerate(keys):
                d.append(f"   [{i}] " + ", ".join(f"{k}: {v}" for k, v in kk.items())[:500])
            if its and self.detect_infotext is None:
                self.detect_infotext = its[0]
        return ok, d

    def c5(self):
        d, ok, changed = [], True, 0
        # flags forced both ways: the paper's mitigation by a low tau, repel (the default) by a high share of
        # references above "suspicious" (its threshold then sits inside the reference scores)
        forced = [("paper", {"mode": "mitigate", "mitigation": "paper", "tau_mild": 0.5, "tau_strong": 1}),
                  ("repel", {"mode": "mitigate", "fpr_suspicious": 0.5})]
        for s, (how, args) in [(s, f) for f in forced for s in ["Euler a", "DPM++ 2M", "DDIM"]]:
            d.append(f"-- {how}")
            got = self.against_off(s, [args], d)
            if got is None:
                ok = False
                continue
            a, b, js, dt = got
            info, its = infotexts(js)
            for i, (x, y) in enumerate(zip(a, b)):
                kk = memstab_keys(its[i]) if i < len(its) else {}
                mit = "MemStab mitigated steps" in kk
                eq = same(x, y)
                changed += not eq
                if not mit and not eq:
                    ok = False
                d.append(f"{s}[{i}]: verdict={kk.get('MemStab verdict')} severity={kk.get('MemStab severity')} "
                         f"mitigated={kk.get('MemStab mitigated steps')} identical_to_off={eq} "
                         f"{'' if eq else diff(x, y)}"
                         f"{'  <-- changed without mitigated steps' if (not mit and not eq) else ''}")
        ok &= changed >= 1
        d.append(f"images changed: {changed}")
        return ok, d

    def c6(self):
        d, ok = [], True
        for s in ["Euler a", "DDIM"]:
            a = self.off(s)
            st, js, text, dt = self.gen(s, [{"mode": "detect", "verdict": "paper"}])
            if st != 200:
                d.append(f"{s}: -> {st} {text[:300]}")
                ok = False
                continue
            info, its = infotexts(js)
            b = [pixels(i) for i in js["images"]]
            eq = [same(x, y) for x, y in zip(a, b)]
            keys = [memstab_keys(t) for t in its]
            good = [("MemStab verdict" in k and "MemStab thresholds" not in k) for k in keys]
            err = info.get("extra_generation_params", {}).get("MemStab error")
            ok &= all(good) and len(good) == 2 and err is None and all(eq)
            d.append(f"{s}: verdict present & no thresholds {good}; identical {eq}; MemStab error={err!r}")
            for i, kk in enumerate(keys):
                d.append(f"   [{i}] " + ", ".join(f"{k}: {v}" for k, v in kk.items())[:500])
        return ok, d

    def c7(self):
        d, ok = [], True
        hr = {"enable_hr": True, "hr_scale": 2, "hr_second_pass_steps": 2, "denoising_strength": 0.5,
              "hr_upscaler": "Latent"}
        st0, opts, _, _ = self.h.call("GET", "/sdapi/v1/options")
        if "forge_preset" in (opts or {}):  # Forge's API hires fix fails (processing.py:1405) without this
            hr["hr_additional_modules"] = ["Use same choices"]
        st, js, text, dt = self.gen("Euler a", [{"mode": "detect"}], hr)
        if st != 200:
            d.append(f"hires -> {st} {text[:500]}")
            ok = False
        else:
            info, its = infotexts(js)
            keys = [memstab_keys(t) for t in its]
            good = [("MemStab verdict" in k and "MemStab hires verdict" in k) for k in keys]
            sizes = [pixels(i).shape for i in js["images"]]
            ok &= len(good) == 2 and all(good)
            d.append(f"hires: images {sizes}; verdict & hires verdict per image {good} ({dt:.1f}s)")
            for i, kk in enumerate(keys):
                d.append(f"   [{i}] " + ", ".join(f"{k}: {v}" for k, v in kk.items())[:600])
        # img2img from a guard-off image
        st0, js0, _, _ = self.gen("Euler a", None, {"batch_size": 1})
        init = js0["images"][0]
        body = dict(BASE, sampler_name="Euler a", init_images=[init], denoising_strength=0.5,
                    alwayson_scripts={SCRIPT: {"args": [{"mode": "detect"}]}})
        st, js, text, dt = self.h.call("POST", "/sdapi/v1/img2img", body)
        if st != 200:
            d.append(f"img2img -> {st} {text[:500]}")
            return False, d
        info, its = infotexts(js)
        keys = [memstab_keys(t) for t in its]
        good = [("MemStab verdict" in k and "MemStab score" in k) for k in keys]
        ok &= len(good) == 2 and all(good)
        d.append(f"img2img: infotexts {len(its)}; verdict & score per image {good} ({dt:.1f}s)")
        for i, kk in enumerate(keys):
            d.append(f"   [{i}] " + ", ".join(f"{k}: {v}" for k, v in kk.items())[:500])
        # img2img pixels. A1111 1.10 encodes the init image by sampling the VAE posterior with the global torch RNG,
        # which the previous request left in its own state: so each compared call follows an identical guard-off
        # img2img call (off, off(A), detect(B), off(C)): A, B and C must be pixel-identical.
        body_off = dict(body)
        body_off.pop("alwayson_scripts")
        seq = [self.h.call("POST", "/sdapi/v1/img2img", x) for x in (body_off, body_off, body, body_off)]
        if all(o[0] == 200 for o in seq):
            pa, pb, pc = ([pixels(i) for i in o[1]["images"]] for o in seq[1:])
            ab = [same(x, y) for x, y in zip(pa, pb)]
            ac = [same(x, y) for x, y in zip(pa, pc)]
            ok &= all(ab) and len(ab) == 2
            d.append(f"img2img (each call after an identical off call): off vs off {ac}, detect vs off {ab}")
        else:
            ok = False
            d.append(f"img2img pixel sequence statuses {[o[0] for o in seq]}")
        return ok, d

    def c8(self):
        d, ok = [], True
        cases = [
            ("mode aggressive", [{"mode": "aggressive"}], None),
            ("tau_mild 10**400 (JSON integer)", None,
             lambda b: json.dumps(dict(b, alwayson_scripts={SCRIPT: {"args": [{"tau_mild": 10 ** 400}]}})).encode()),
            ("bogus key", [{"bogus": 1}], None),
        ]
        for label, args, raw in cases:
            st, js, text, dt = self.gen("Euler a", args, {"batch_size": 1}, raw_body=raw)
            if st != 200:
                ok = False
                d.append(f"{label}: -> {st} {text[:400]}")
                continue
            info, its = infotexts(js)
            err = info.get("extra_generation_params", {}).get("MemStab error")
            n = len(js.get("images") or [])
            ok &= n >= 1 and bool(err)
            d.append(f"{label}: 200, images {n}, MemStab error={err!r}")
            if its:
                d.append(f"   infotext MemStab keys: {memstab_keys(its[0])}")
        return ok, d

    def c9(self):
        d, ok = [], True
        st, js, text, dt = self.h.call("POST", "/memstab/v1/calibrate", {"seeds": 1000000}, timeout=60)
        good = st == 400 and dt < 5
        ok &= good
        d.append(f"calibrate seeds=1e6 -> {st} in {dt:.2f}s: {text[:300]}")
        st, js, text, dt = self.h.call("PUT", "/memstab/v1/profiles/x", raw=b"hello", ctype="text/plain")
        ok &= 400 <= st < 500
        d.append(f"PUT profiles/x text/plain 'hello' -> {st}: {text[:300]}")
        st, js, text, dt = self.h.call("GET", "/memstab/v1/profiles/nothing")
        ok &= st == 404
        d.append(f"GET profiles/nothing -> {st}: {text[:300]}")
        if not self.profile_name:
            st0, lj0, _, _ = self.h.call("GET", "/memstab/v1/profiles")
            self.profile_name = ((lj0 or {}).get("automatic") or {}).get("name")
        if self.profile_name:
            st, prof, text, dt = self.h.call("GET", f"/memstab/v1/profiles/{self.profile_name}")
            d.append(f"export {self.profile_name} -> {st}, {len(text)} bytes")
            if st == 200 and isinstance(prof, dict):
                bad = copy.deepcopy(prof)
                meta = bad.setdefault("meta", {})
                target = next((k for k, v in meta.items() if isinstance(v, (int, float)) and not isinstance(v, bool)),
                              None)
                if target is None:
                    target = "cfg_scale"
                meta[target] = float("nan")
                raw = json.dumps(bad).encode()  # writes NaN
                st, js, text, dt = self.h.call("PUT", "/memstab/v1/profiles/nanmeta", raw=raw)
                ok &= st == 400
                d.append(f"PUT profiles/nanmeta with meta[{target!r}]=NaN -> {st}: {text[:300]}")
                st, lj, text, dt = self.h.call("GET", "/memstab/v1/profiles")
                names = [p.get("name") for p in (lj or {}).get("profiles", [])]
                ok &= st == 200 and "nanmeta" not in names
                d.append(f"GET profiles -> {st}; names {names}")
        else:
            ok = False
            d.append("no calibrated profile to export (check 3 failed); NaN import not tried")
        return ok, d

    def c10(self):
        d, ok = [], True
        base = self.detect_infotext
        if not base:
            st0, js0, _, _ = self.gen("Euler a", [{"mode": "detect"}], {"batch_size": 1})
            base = infotexts(js0)[1][0] if st0 == 200 and infotexts(js0)[1] else None
        if not base:
            return False, ["no detect infotext from check 4"]
        pasted = base.rstrip() + ", MemStab tau mild: abc"
        st0, opts, _, _ = self.h.call("GET", "/sdapi/v1/options")
        # an infotext without MemStab keys first: seen in Forge, a paste update object reached float() -> 500
        plain = ", ".join(part for part in base.rstrip().split(", ") if not part.startswith("MemStab"))
        for label, text_in in (("without MemStab keys", plain), ("+'MemStab tau mild: abc'", pasted)):
            body = dict(BASE, sampler_name="Euler a", batch_size=1, infotext=text_in)
            for k in ("prompt", "seed", "steps", "cfg_scale", "sampler_name", "width", "height", "negative_prompt"):
                body.pop(k, None)  # let the infotext set them
            if "forge_preset" in (opts or {}):  # Forge's apply_infotext fails on the unset styles field (isinstance
                body["styles"] = []  # with list[str], api.py:407) for any infotext, with or without any extension
            st, js, text, dt = self.h.call("POST", "/sdapi/v1/txt2img", body)
            ok &= st != 500 and st == 200
            d.append(f"txt2img with infotext ({label}) -> {st} ({dt:.1f}s)")
            if st == 200:
                info, its = infotexts(js)
                d.append(f"   resulting MemStab keys: {memstab_keys(its[0]) if its else None}; "
                         f"error={info.get('extra_generation_params', {}).get('MemStab error')!r}")
            else:
                d.append("   " + text[:600])
        # the same infotext through "PNG Info" (/sdapi/v1/png-info runs the infotext_pasted callbacks)
        from PIL import Image, PngImagePlugin

        meta = PngImagePlugin.PngInfo()
        meta.add_text("parameters", pasted + ", MemStab mode: sideways, MemStab gamma: 1e999")
        buf = io.BytesIO()
        Image.new("RGB", (64, 64)).save(buf, "PNG", pnginfo=meta)
        b64 = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
        st, js, text, dt = self.h.call("POST", "/sdapi/v1/png-info", {"image": b64})
        ok &= st == 200
        mk = {k: v for k, v in ((js or {}).get("parameters") or {}).items() if "MemStab" in k}
        d.append(f"png-info with that infotext (+ mode sideways, gamma 1e999) -> {st}: "
                 f"{mk if st == 200 else text[:300]}")
        return ok, d

    def profile_names(self):
        st, js, _, _ = self.h.call("GET", "/memstab/v1/profiles")
        return [p.get("name") for p in (js or {}).get("profiles", [])] if st == 200 else None

    def c11(self):
        """Interrupt a calibration from another client: 409, nothing written."""
        import threading

        d, before, out = [], self.profile_names(), {}
        req = {"n_prompts": 40, "seeds": 1, "steps": 6, "width": 64, "height": 64, "sampler": "Euler",
               "name": "interrupted-check"}

        def run():
            out["r"] = self.h.call("POST", "/memstab/v1/calibrate", req)

        t = threading.Thread(target=run)
        t.start()
        time.sleep(2.0)
        st_i, _, _, _ = self.h.call("POST", "/sdapi/v1/interrupt")
        t.join(600)
        st, js, text, dt = out.get("r", (None, None, "no answer", 0))
        after = self.profile_names()
        d.append(f"calibrate 40 prompts, interrupt after 2 s (-> {st_i}): {st} in {dt:.1f}s: {text[:300]}")
        d.append(f"profiles before {before}, after {after}")
        return st == 409 and after == before and "interrupted-check" not in (after or []), d

    def c12(self):
        """Switch the checkpoint, then calibrate: the profile names the new checkpoint (env MEMSTAB_LIVE_CKPT2 or the
        first other checkpoint the webui lists); the original checkpoint is restored afterwards."""
        d = []
        st, models, _, _ = self.h.call("GET", "/sdapi/v1/sd-models")
        st_o, opts, _, _ = self.h.call("GET", "/sdapi/v1/options")
        current = (opts or {}).get("sd_model_checkpoint")
        titles = [m.get("title") for m in (models or [])]
        want = os.environ.get("MEMSTAB_LIVE_CKPT2")
        def stem(t):  # Forge's option names the checkpoint without the " [hash]" that sd-models lists
            return (t or "").split(" [")[0]

        other = next((t for t in titles if stem(t) != stem(current) and (not want or want in t)), None)
        d.append(f"checkpoints {titles}; current {current!r}; switching to {other!r}")
        if other is None:
            return False, d + ["no second checkpoint: build one (build_tiny_ckpt.py <webui> --name tiny-random-b "
                               "--seed 4321) or set MEMSTAB_LIVE_CKPT2"]
        st, _, text, dt = self.h.call("POST", "/sdapi/v1/options", {"sd_model_checkpoint": other})
        d.append(f"switch -> {st} ({dt:.1f}s) {text[:200] if st != 200 else ''}")
        try:
            req = {"n_prompts": 3, "seeds": 1, "steps": 4, "width": 64, "height": 64, "sampler": "Euler"}
            st, js, text, dt = self.h.call("POST", "/memstab/v1/calibrate", req)
            meta = (js or {}).get("meta") or {}
            expect = other.split("[")[-1].rstrip("]").strip() if "[" in other else None
            d.append(f"calibrate -> {st}: name {(js or {}).get('name')!r}, model {meta.get('model')!r}, hash "
                     f"{meta.get('model_hash')!r} (the checkpoint's listed hash {expect!r})")
            ok = st == 200 and meta.get("model_hash") and (expect is None or meta["model_hash"] == expect.lower())
            ok = ok and stem(other).rsplit(".", 1)[0].split("/")[-1] in meta.get("model", "")
        finally:
            self.h.call("POST", "/sdapi/v1/options", {"sd_model_checkpoint": current})
        return bool(ok), d

    def c13(self):
        """An exception inside the guard's hook (tools/live_webui/fault_injector, linked into the host, server
        started with MEMSTAB_FAULT_FLAG, the same path in MEMSTAB_LIVE_FAULT_FLAG here): the images finish, each
        with the note; detect mode's pixels are those of the guard off."""
        flag = os.environ.get("MEMSTAB_LIVE_FAULT_FLAG")
        if not flag:
            return False, ["MEMSTAB_LIVE_FAULT_FLAG is not set: link tools/live_webui/fault_injector into the host's "
                           "extensions/ and start it with MEMSTAB_FAULT_FLAG=<path>"]
        d = []
        a = self.off("Euler a")
        open(flag, "w").close()
        try:
            st, js, text, dt = self.gen("Euler a", [{"mode": "detect"}])
        finally:
            os.remove(flag)
        if st != 200:
            return False, [f"with the fault: {st} {text[:400]}"]
        _, its = infotexts(js)
        b = [pixels(i) for i in js["images"]]
        notes = [memstab_keys(t).get("MemStab note", "") for t in its]
        eq = [same(x, y) for x, y in zip(a, b)]
        d.append(f"with the fault: 200, {len(b)} images, identical to off {eq}, notes {notes}")
        ok = len(b) == 2 and all(eq) and all("fault injected by the live kit" in n for n in notes)
        st2, js2, _, _ = self.gen("Euler a", [{"mode": "detect"}])
        after = [memstab_keys(t) for t in infotexts(js2)[1]] if st2 == 200 else []
        d.append(f"next job without the fault: {st2}, verdicts {[k.get('MemStab verdict') for k in after]}")
        return ok and st2 == 200 and all("MemStab verdict" in k for k in after), d

    def run(self, only=None):
        checks = [(1, "server starts, no memstab traceback", self.c1),
                  (2, "installed but off: pixel identity", self.c2),
                  (3, "calibration via API + automatic pick", self.c3),
                  (4, "detect mode: per-image keys, pixels unchanged", self.c4),
                  (5, "mitigate with forced flags", self.c5),
                  (6, "paper verdict rule", self.c6),
                  (7, "hires fix and img2img per-image keys", self.c7),
                  (8, "bad arguments never fail the request", self.c8),
                  (9, "hostile routes", self.c9),
                  (10, "infotext paste-back", self.c10),
                  (11, "interrupted calibration writes nothing", self.c11),
                  (12, "calibration after a checkpoint switch names the new checkpoint", self.c12),
                  (13, "an exception inside the hook: logged once, noted, the image finishes", self.c13)]
        for num, name, fn in checks:
            if only and num not in only:
                continue
            self.run_check(num, name, fn)
        return self.results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--log", help="the webui's server log (stdout+stderr) to scan for memstab tracebacks")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--only", help="comma-separated check numbers")
    a = ap.parse_args()
    only = {int(x) for x in a.only.split(",")} if a.only else None
    if only and (4 in only or 10 in only or 9 in only) and 3 not in only:
        print("note: checks 9/10 use the profile from 3 / the infotext from 4 when they ran in this invocation")
    s = Smoke(a.url, a.log)
    res = s.run(only)
    if a.json:
        json.dump(res, open(a.json, "w"), indent=1)
    npass = sum(r["pass"] for r in res)
    print(f"\n{npass}/{len(res)} checks passed")
    return 0 if npass == len(res) else 1


if __name__ == "__main__":
    sys.exit(main())

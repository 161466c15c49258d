"""The live kit's pure parts, which CI can run without a webui: how the memorization measurement reads the webui's
images back into the latents they show, and how it writes its doc."""

import base64
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools" / "live_webui"))

PIL = pytest.importorskip("PIL.Image")


def _png_b64(a: np.ndarray) -> str:
    buf = io.BytesIO()
    PIL.fromarray(a).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_a_decoded_image_reads_back_as_its_latent():
    import memorization_live as ml

    rng = np.random.default_rng(0)
    latent = rng.uniform(-1, 1, (3, 16, 16)).astype(np.float32)
    # what the checkpoint's VAE and the webui do: 8x nearest upsampling, then (x + 1) / 2 to 8 bits
    img = np.round((np.repeat(np.repeat(latent, 8, 1), 8, 2).transpose(1, 2, 0) + 1) * 127.5).astype(np.uint8)
    pix = ml.pixels_of({"images": ["data:image/png;base64," + _png_b64(img)]})
    assert pix[0].shape == (128, 128, 3) and (pix[0] == img).all()
    back = ml.latents_shown(pix)[0].numpy()
    assert back.shape == (3, 16, 16)
    assert np.abs(back - latent).max() <= 0.5 / 127.5 + 1e-6  # 8-bit rounding only
    assert np.abs(ml.latents_shown([np.roll(img, 1, 0)])[0].numpy() - latent).max() > 0.05  # not a tautology


def test_the_doc_keeps_its_text_and_replaces_the_table(tmp_path):
    import memorization_live as ml

    rep = {k: 0.5 for _, key, _ in ml.ROWS for k in (key if isinstance(key, tuple) else (key,))}
    rep.update(sampler="Euler", steps=20, profile="p", reference_generations=56, seconds=10.0, thresholds="1/2",
               per_caption=[{"caption": "portrait photo of anna petrova", "copies_off": 4,
                             "verdicts": ["clean", "memorized"], "early": 1, "copies_on": 0}])
    doc = tmp_path / "live.md"
    doc.write_text("# Hand-written\n\nkept\n\n<!-- measured: written by tools/live_webui/memorization_live.py -->"
                   "\nOLD-TABLE")
    jf = tmp_path / "r.json"
    jf.write_text(json.dumps(rep))
    ml.main(["--from", str(jf), "--md", str(doc)])
    text = doc.read_text()
    assert text.startswith("# Hand-written\n\nkept") and "OLD-TABLE" not in text
    assert "| Euler 20 |" in text and "| portrait photo of anna petrova | 4 | clean, memorized | 1 | 0 |" in text
    assert text.count("0.500") >= 10


def test_the_reference_set_table_goes_before_the_measured_one_and_is_replaced_in_place(tmp_path):
    import memorization_live as ml

    def rep(n, seeds, draw, caught):
        return {"sampler": "Euler", "steps": 20, "copies": 18, "ordinary_generations": 124, "reference_prompts": n,
                "reference_seeds": seeds, "reference_order_seed": draw, "thresholds": "3.4/3.6",
                "early_thresholds": "11.7/12.8", "copies_memorized": caught, "copies_early_flag": 0.0,
                "ordinary_not_clean": 0.04, "ordinary_early_flag": 0.0, "on_strict": 0.25, "on_loose": 0.5,
                "on_fidelity": 0.75}

    marker = "<!-- measured: written by tools/live_webui/memorization_live.py -->"
    doc = tmp_path / "live.md"
    doc.write_text(f"# Hand-written\n\n{marker}\nTABLE")
    files = []
    for i, r in enumerate([rep(28, 2, 2026, 0.222), rep(50, 1, 2027, 0.389)]):
        files.append(tmp_path / f"r{i}.json")
        files[-1].write_text(json.dumps(r))
    ml.main(["--from", *map(str, files), "--md", str(doc), "--refsets"])
    ml.main(["--from", str(files[1]), "--md", str(doc), "--refsets"])  # a second write replaces the first
    text = doc.read_text()
    assert text.startswith("# Hand-written") and text.endswith(f"{marker}\nTABLE")
    assert text.count(ml.REFSETS_MARK[0]) == 1 and text.index(ml.REFSETS_MARK[1]) < text.index(marker)
    assert "| 50 x 1, 2027 | 3.4/3.6 / 11.7/12.8 | 0.389 | 0.000 | 0.040 | 0.000 | 0.250 / 0.500 / 0.750 |" in text
    assert "28 x 2, 2026" not in text
    files[0].write_text(json.dumps({**rep(27, 2, 2026, 0.9), "reference_excluded": ["a horse silhouette"]}))
    ml.main(["--from", str(files[0]), "--md", str(doc), "--refsets"])
    assert "| 27 x 2, 2026 without 'a horse silhouette' |" in doc.read_text()


def test_latents_carry_rgb_and_their_mean():
    import memorizing_ckpt as mc

    x = np.random.default_rng(1).uniform(-1, 1, (2, 3, 16, 16)).astype(np.float32)
    z = mc.latents_of(x)
    assert z.shape == (2, 4, 16, 16) and np.allclose(z[:, :3], x) and np.allclose(z[:, 3], x.mean(1))
    assert 2 ** (len(mc.VAE["ch_mult"]) - 1) == 8  # the webui assumes 8 pixels per latent cell


def test_the_live_host_is_started_with_its_flavours_flags_and_never_links_over_a_foreign_extension(tmp_path):
    import host

    a1111, forge = tmp_path / "a1111", tmp_path / "forge"
    for root in (a1111, forge):
        (root / "modules").mkdir(parents=True)
        (root / "launch.py").write_text("")
    (forge / "modules_forge").mkdir()
    assert host.flavour(a1111) == "a1111" and host.flavour(forge) == "forge"
    fa, ff = host.flags(a1111, 7000, "x.safetensors"), host.flags(forge, 7001)
    assert "--use-cpu" in fa and "--no-half" in fa and fa[-2:] == ["--ckpt", "x.safetensors"]
    assert "--always-cpu" in ff and "--skip-install" in ff and "--ckpt" not in ff
    assert ff[ff.index("--port") + 1] == "7001" and "--nowebui" in ff and "--api" in ff
    with pytest.raises(host.HostError, match="not a webui"):
        host.flavour(tmp_path)
    host.link(a1111, "sd-webui-memstab", host.CHECKOUT)
    assert (a1111 / "extensions" / "sd-webui-memstab").resolve() == host.CHECKOUT.resolve()
    host.link(a1111, "sd-webui-memstab", host.CHECKOUT)  # already there: fine
    (forge / "extensions" / "sd-webui-memstab").mkdir(parents=True)  # someone else's copy
    with pytest.raises(host.HostError, match="not a link to"):
        host.link(forge, "sd-webui-memstab", host.CHECKOUT)
    with pytest.raises(host.HostError, match="not the webui's python"):
        with host.started(a1111, tmp_path / "no-python", None, tmp_path / "log"):
            pass
    assert 0 < host.free_port() < 65536

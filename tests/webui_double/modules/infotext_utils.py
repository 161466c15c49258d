"""quote / parse_generation_parameters: the key pattern the webui parses back (host-api.md 2.5)."""

import json
import re

re_param_code = r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)'
re_param = re.compile(re_param_code)


def quote(text):
    if "," not in str(text) and "\n" not in str(text) and ":" not in str(text):
        return text
    return json.dumps(text, ensure_ascii=False)


def unquote(text):
    if len(text) == 0 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        return json.loads(text)
    except Exception:
        return text


def parse_generation_parameters(x: str) -> dict:
    res = {}
    lines = x.strip().split("\n")
    lastline = lines[-1]
    if len(re_param.findall(lastline)) < 3:
        return {"Prompt": x}
    res["Prompt"] = "\n".join(lines[:-1])
    for k, v in re_param.findall(lastline):
        res[k] = unquote(v)
    return res

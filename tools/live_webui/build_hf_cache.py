"""An offline HF_HOME (hub layout) holding openai/clip-vit-large-patch14's tokenizer and config, the vocabulary derived
from clip-anytorch's bpe_simple_vocab_16e6.txt.gz as OpenAI's SimpleTokenizer builds it (49408 tokens).

    <webui venv>/bin/python build_hf_cache.py <HF_HOME folder>
"""

import gzip
import hashlib
import json
import os
import sys

import clip
from transformers.models.clip.tokenization_clip import bytes_to_unicode

SPECIAL = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
           "pad_token": "<|endoftext|>"}
TEXT = {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12, "num_hidden_layers": 12,
        "max_position_embeddings": 77, "hidden_act": "quick_gelu", "vocab_size": 49408, "projection_dim": 768,
        "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1, "layer_norm_eps": 1e-5}
VISION = {"hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16, "num_hidden_layers": 24,
          "patch_size": 14, "image_size": 224, "projection_dim": 768, "hidden_act": "quick_gelu"}


def main(root):
    p = os.path.join(os.path.dirname(clip.__file__), "bpe_simple_vocab_16e6.txt.gz")
    merges = gzip.open(p).read().decode().split("\n")[1:49152 - 256 - 2 + 1]
    vocab = list(bytes_to_unicode().values())
    vocab += [v + "</w>" for v in vocab]
    vocab += ["".join(m.split()) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == 49408
    files = {
        "vocab.json": json.dumps({t: i for i, t in enumerate(vocab)}),
        "merges.txt": "#version: 0.2\n" + "\n".join(merges) + "\n",
        "tokenizer_config.json": json.dumps(dict(SPECIAL, add_prefix_space=False, errors="replace",
                                                 do_lower_case=True, model_max_length=77,
                                                 tokenizer_class="CLIPTokenizer")),
        "special_tokens_map.json": json.dumps(SPECIAL),
        "config.json": json.dumps({"architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": 768,
                                   "text_config": TEXT, "vision_config": VISION}),
    }
    repo = os.path.join(root, "hub", "models--openai--clip-vit-large-patch14")
    snap = "0" * 32 + "deadbeef"
    for d in ("blobs", "snapshots/" + snap, "refs"):
        os.makedirs(os.path.join(repo, d), exist_ok=True)
    for name, text in files.items():
        data = text.encode()
        h = hashlib.sha256(data).hexdigest()
        with open(os.path.join(repo, "blobs", h), "wb") as f:
            f.write(data)
        link = os.path.join(repo, "snapshots", snap, name)
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(os.path.join("..", "..", "blobs", h), link)
    with open(os.path.join(repo, "refs", "main"), "w") as f:
        f.write(snap)
    with open(os.path.join(root, "hub", "version.txt"), "w") as f:
        f.write("1")
    print("ok", repo)


if __name__ == "__main__":
    main(sys.argv[1])

"""A tiny random-weight SD-1.x checkpoint for a live A1111 test host:
<webui>/models/Stable-diffusion/tiny-random.{safetensors,yaml}; with --full, a full-size SD-1.5 layout for Forge
(which only recognises SD-1.5's real channel counts; ~2.1 GB fp16), written to the given path.

    HF_HOME=<cache from build_hf_cache.py> HF_HUB_OFFLINE=1 <webui venv>/bin/python build_tiny_ckpt.py <webui folder>
    ... build_tiny_ckpt.py <a1111 webui folder> --full <out.safetensors>

UNet at model_channels 32, channel_mult [1, 2], one res block, attention at 2x downsampling (1.36 M parameters), built
with the webui's own ldm classes; zero-initialised layers re-initialised and norm affines jittered so images are not
constant. Full-size CLIP-L text encoder and VAE (random): 416 MB fp16. With A1111's default "Original" prompt
emphasis, a prompt with a comma can give NansException on this random text encoder: set the host option emphasis
to "None".
"""

import copy
import math
import os
import sys


def main(sdw, name="tiny-random", full_out=None, seed=1234):
    sys.path.insert(0, os.path.join(sdw, "repositories/stable-diffusion-stability-ai"))
    import torch
    import yaml
    from ldm.util import instantiate_from_config
    from omegaconf import OmegaConf
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)  # another seed: another checkpoint (another hash), for the checkpoint-switch check
    with open(os.path.join(sdw, "configs/v1-inference.yaml")) as f:
        cfg = yaml.safe_load(f)
    if full_out is None:
        u = cfg["model"]["params"]["unet_config"]["params"]
        u.update(model_channels=32, channel_mult=[1, 2], num_res_blocks=1, attention_resolutions=[2],
                 num_head_channels=8, context_dim=768, num_heads=-1)
        out_dir = os.path.join(sdw, "models/Stable-diffusion")
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, name + ".yaml"), "w") as f:
            yaml.safe_dump(cfg, f, sort_keys=False)
        path = os.path.join(out_dir, name + ".safetensors")
    else:  # the real v1-inference.yaml: model_channels 320 etc.
        path = full_out
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    build = copy.deepcopy(cfg)
    build["model"]["params"]["cond_stage_config"] = {"target": "torch.nn.Identity"}
    model = instantiate_from_config(OmegaConf.create(build)["model"])
    with torch.no_grad():
        for n, m in model.named_modules():
            if isinstance(m, (torch.nn.GroupNorm, torch.nn.LayerNorm)) and m.weight is not None:
                m.weight.copy_(1 + 0.1 * torch.randn_like(m.weight))
                m.bias.copy_(0.1 * torch.randn_like(m.bias))
            elif (isinstance(m, (torch.nn.Conv2d, torch.nn.Linear, torch.nn.Conv1d)) and n.startswith("model.")
                  and m.weight.abs().max() == 0):
                std = (0.5 / math.sqrt(m.weight[0].numel()) if full_out is not None else
                       0.02 if isinstance(m, torch.nn.Linear) else 0.05)
                torch.nn.init.normal_(m.weight, std=std)
                if m.bias is not None:
                    torch.nn.init.normal_(m.bias, std=0.01)
    sd = {k: v for k, v in model.state_dict().items() if not k.startswith("cond_stage_model")}
    del model
    tc = CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
                        max_position_embeddings=77, hidden_act="quick_gelu", vocab_size=49408)
    for k, v in CLIPTextModel(tc).state_dict().items():
        sd["cond_stage_model.transformer." + k] = v
    unet = sum(v.numel() for k, v in sd.items() if k.startswith("model.diffusion_model."))
    sd = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in sd.items()}
    save_file(sd, path)
    print("unet params", unet, "keys", len(sd), "bytes", os.path.getsize(path))


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("webui")
    ap.add_argument("--full", help="write a full-size SD-1.5 checkpoint here (for Forge)")
    ap.add_argument("--name", default="tiny-random")
    ap.add_argument("--seed", type=int, default=1234)
    a = ap.parse_args()
    main(a.webui, a.name, a.full, a.seed)

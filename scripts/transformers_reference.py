#!/usr/bin/env python3
"""Reference numbers from Hugging Face transformers itself (not our float64 re-implementation).

Run on a machine with torch + transformers (the GPU machine has both):

    python3 scripts/transformers_reference.py --fixtures fixtures --out /tmp/hf-reference [--big]

tiny: loads fixtures/qwen2vl-tiny (config.json + model.safetensors, hub names) into
  transformers' Qwen2VLForConditionalGeneration in float64 (eager attention), runs every case of
  the fixture set (case-*.safetensors with `input_ids`), and writes `tiny-<case>.safetensors`:
  `logits` [B,S,V], `loss` [], and `grad.<hub name>` for every parameter (F64), computed by
  transformers' own forward, position ids (get_rope_index) and loss. Greedy `generate` of the
  generation cases is written as `generated_ids`. It also prints how far transformers is from the
  fixture's float64 numbers (max abs / rel on unpadded positions): a check of the fixture itself.
--big: a random-init Qwen2-VL-2B (the hub config, seed 0), rounded to bfloat16 and saved as a
  Hugging Face folder `<out>/qwen2vl-2b-random/` (hub names, bf16 safetensors), fixed inputs
  (two rows, one 448x448-patch image each, left padded) in `big-inputs.safetensors`, and reference
  outputs of the same bf16 weights run by transformers in float32 and in bfloat16
  (`big-float32.safetensors`, `big-bfloat16.safetensors`: loss, logits of the last 8 positions of
  each row, gradients of a fixed set of parameters). The bf16 run's distance from the fp32 run is
  the yardstick for our bf16 port.

A summary is printed and written to `<out>/summary.json`.
"""

import argparse
import json
import os
import sys
import time

import torch
from safetensors.torch import load_file, save_file
from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


def hub_name(name: str) -> str:
    """transformers >= 4.52 parameter names -> the original hub names the fixtures use."""
    if name.startswith("model.visual."):
        return name[len("model.") :]
    if name.startswith("model.language_model."):
        return "model." + name[len("model.language_model.") :]
    return name


def named_grads(model):
    out = {}
    for name, p in model.named_parameters():
        if p.grad is not None:
            out["grad." + hub_name(name)] = p.grad.detach()
    return out


def masked_stats(a: torch.Tensor, b: torch.Tensor, mask=None):
    a = a.double().cpu()
    b = b.double().cpu()
    if mask is not None:
        a = a[mask]
        b = b[mask]
    d = (a - b).abs()
    return {"max_abs": float(d.max()) if d.numel() else 0.0, "max_ref": float(b.abs().max()) if b.numel() else 0.0}


def model_inputs(case, device, dtype):
    kw = {
        "input_ids": case["input_ids"].to(device),
        "attention_mask": case["attention_mask"].to(device),
    }
    if "pixel_values" in case:
        kw["pixel_values"] = case["pixel_values"].to(device=device, dtype=dtype)
        kw["image_grid_thw"] = case["image_grid_thw"].to(device)
    return kw


def tiny(fixtures: str, out: str, device: str, summary: dict):
    folder = os.path.join(fixtures, "qwen2vl-tiny")
    model, info = Qwen2VLForConditionalGeneration.from_pretrained(
        folder, dtype=torch.float64, attn_implementation="eager", output_loading_info=True
    )
    model.to(device)
    missing = [k for k in info.get("missing_keys", []) if "lm_head" not in k]
    if missing or info.get("unexpected_keys"):
        raise SystemExit(f"tiny: transformers did not load every weight: missing {missing}, unexpected {info.get('unexpected_keys')}")
    # Every loaded weight must equal the file's (names mapped back to the hub layout).
    weights = load_file(os.path.join(folder, "model.safetensors"))
    for name, p in model.named_parameters():
        ref = weights.get(hub_name(name))
        if ref is None and hub_name(name) == "lm_head.weight":
            continue
        if ref is None or not torch.equal(p.detach().cpu(), ref.double()):
            raise SystemExit(f"tiny: parameter {name} does not equal {hub_name(name)} of the file")
    unused_id = int(model.get_input_embeddings().weight.shape[0] - 1)
    cases = sorted(f for f in os.listdir(folder) if f.startswith("case-") and f.endswith(".safetensors"))
    for file in cases:
        name = file[: -len(".safetensors")]
        case = load_file(os.path.join(folder, file))
        result = {}
        entry = {}
        if "generated_ids" in case:
            n = int(case["max_new_tokens"])
            with torch.no_grad():
                seq = model.generate(
                    **model_inputs(case, device, torch.float64),
                    do_sample=False,
                    max_new_tokens=n,
                    # The fixture's greedy decode never stops early: stop only on the last id, an
                    # unused row (as the TypeScript suites do), so exactly n tokens come out.
                    eos_token_id=unused_id,
                    pad_token_id=unused_id,
                )
            gen = seq[:, case["input_ids"].shape[1] :].cpu()
            result["generated_ids"] = gen.contiguous()
            entry["generated_ids_equal_fixture"] = bool(torch.equal(gen, case["generated_ids"]))
        else:
            model.zero_grad(set_to_none=True)
            has_grads = any(k.startswith("grad.") for k in case)
            with torch.set_grad_enabled(has_grads):
                res = model(**model_inputs(case, device, torch.float64), labels=case["labels"].to(device))
            mask = case["attention_mask"].bool()
            result["logits"] = res.logits.detach().cpu().contiguous()
            result["loss"] = res.loss.detach().cpu().reshape(())
            entry["logits_vs_fixture"] = masked_stats(res.logits.detach(), case["logits"], mask)
            entry["loss"] = float(res.loss)
            entry["loss_fixture"] = float(case["loss"])
            if has_grads:
                res.loss.backward()
                grads = named_grads(model)
                worst = {"max_abs": 0.0, "name": None}
                for k, g in grads.items():
                    if k not in case:
                        continue
                    s = masked_stats(g, case[k])
                    rel = s["max_abs"] / max(s["max_ref"], 1e-30)
                    if rel > worst.get("rel", -1):
                        worst = {"rel": rel, **s, "name": k}
                entry["worst_grad_vs_fixture"] = worst
                entry["grads_compared"] = sum(1 for k in grads if k in case)
                for k, g in grads.items():
                    result[k] = g.cpu().contiguous()
        save_file(result, os.path.join(out, f"tiny-{name}.safetensors"), metadata={"format": "pt", "source": "transformers"})
        summary["tiny"][name] = entry
        print(f"tiny {name}: {json.dumps(entry)}", flush=True)


# The hub's Qwen2-VL-2B config.json (original layout), shared with the TypeScript suites.
BIG_CONFIG_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "packages", "core", "test", "data", "qwen2vl-2b-config.json")
with open(BIG_CONFIG_PATH) as _f:
    BIG_CONFIG = json.load(_f)

BIG_GRADS = [
    "model.layers.0.self_attn.q_proj.weight",
    "model.layers.0.self_attn.k_proj.bias",
    "model.layers.27.mlp.down_proj.weight",
    "model.norm.weight",
    "visual.blocks.0.attn.qkv.weight",
    "visual.blocks.31.mlp.fc2.weight",
    "visual.merger.mlp.2.weight",
    "visual.patch_embed.proj.weight",
]


def big_inputs(grid: int, prompt: int, answer: int):
    """Two rows: [pads] <|vision_start|> image_pad x (grid/2)^2 <|vision_end|> text answer; row 1 shorter (left padded)."""
    g = torch.Generator().manual_seed(1)
    image_tokens = (grid // 2) ** 2
    rows = []
    for r in range(2):
        text = torch.randint(0, 151643, (prompt - 8 * r,), generator=g)
        ans = torch.randint(0, 151643, (answer,), generator=g)
        ids = torch.cat([
            torch.tensor([151644]), text[:4], torch.tensor([151652]), torch.full((image_tokens,), 151655),
            torch.tensor([151653]), text[4:], ans, torch.tensor([151645]),
        ])
        rows.append(ids)
    S = max(len(r) for r in rows)
    input_ids = torch.full((2, S), 151643, dtype=torch.int64)
    attention_mask = torch.zeros((2, S), dtype=torch.int64)
    labels = torch.full((2, S), -100, dtype=torch.int64)
    for r, ids in enumerate(rows):
        input_ids[r, S - len(ids) :] = ids
        attention_mask[r, S - len(ids) :] = 1
        labels[r, S - answer - 1 :] = ids[-answer - 1 :]
    pixel_values = torch.randn((2 * grid * grid, 1176), generator=g).float()
    image_grid_thw = torch.tensor([[1, grid, grid], [1, grid, grid]], dtype=torch.int64)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels,
            "pixel_values": pixel_values, "image_grid_thw": image_grid_thw}


def big(out: str, device: str, summary: dict):
    folder = os.path.join(out, "qwen2vl-2b-random")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(BIG_CONFIG, f, indent=2)
    config = Qwen2VLConfig.from_pretrained(folder)
    t = time.time()
    torch.manual_seed(0)
    config._attn_implementation = "eager"
    with torch.device(device):
        model = Qwen2VLForConditionalGeneration(config)
    model.to(torch.bfloat16)
    # Save with the hub's original names so every loader reads it.
    state = {hub_name(k): v.detach().contiguous().cpu() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(state, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    os.remove(os.path.join(folder, "config.json"))
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(BIG_CONFIG, f, indent=2)
    summary["big"] = {"parameters": sum(p.numel() for p in model.parameters()), "init_and_save_s": round(time.time() - t, 1)}
    inputs = big_inputs(grid=32, prompt=40, answer=24)
    save_file(inputs, os.path.join(out, "big-inputs.safetensors"))
    for dtype, tag in ((torch.float32, "float32"), (torch.bfloat16, "bfloat16")):
        model.to(dtype)  # bf16 -> fp32 is exact: both runs see the same weights
        model.zero_grad(set_to_none=True)
        t = time.time()
        res = model(**model_inputs(inputs, device, dtype), labels=inputs["labels"].to(device))
        res.loss.backward()
        torch.cuda.synchronize()
        grads = {hub_name(k): p.grad for k, p in model.named_parameters()}
        result = {
            "loss": res.loss.detach().float().cpu().reshape(()),
            "logits_last8": res.logits[:, -8:].detach().float().cpu().contiguous(),
        }
        for k in BIG_GRADS:
            result["grad." + k] = grads[k].detach().float().cpu().contiguous()
        save_file(result, os.path.join(out, f"big-{tag}.safetensors"))
        summary["big"][tag] = {"loss": float(res.loss), "forward_backward_s": round(time.time() - t, 2)}
        print(f"big {tag}: loss {float(res.loss):.6f} ({time.time() - t:.1f} s)", flush=True)
        del res, grads
    ref = load_file(os.path.join(out, "big-float32.safetensors"))
    low = load_file(os.path.join(out, "big-bfloat16.safetensors"))
    summary["big"]["bf16_vs_fp32"] = {k: masked_stats(low[k], ref[k]) for k in ref}
    print("big bf16 vs fp32: " + json.dumps(summary["big"]["bf16_vs_fp32"]), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", default="fixtures")
    ap.add_argument("--out", required=True)
    ap.add_argument("--big", action="store_true")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    import transformers

    summary = {"torch": torch.__version__, "transformers": transformers.__version__, "device": args.device, "tiny": {}}
    tiny(args.fixtures, args.out, args.device, summary)
    if args.big:
        big(args.out, args.device, summary)
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())

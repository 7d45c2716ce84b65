#!/usr/bin/env python3
"""PyTorch peer of the model benchmark (benchmarks/src/model.ts).

A compact re-implementation of Qwen2-VL (docs: /work/shared/docs/qwen2vl-spec.md sections 2-4) in
float32 eager PyTorch, loading the SAME weights (a checkpoint folder written by our
`savePretrained`: config.json + model.safetensors, read by hand) and the SAME inputs
(`inputs.safetensors` written by benchmarks/src/model-worker.ts, with our reference outputs).

1. Parity first: M-RoPE positions, final hidden states, logits at sampled positions, per-token
   log-probs, the loss and the gradients (per-parameter norms and leading values) against ours.
   Logits must agree within 1e-3 (max abs); otherwise no timing is done (exit code 3).
2. Then, in this process: forward + backward of the mean cross-entropy (median of reps after a
   warm-up), the forward alone (no grad), greedy generation with a KV cache, and peak RSS.

    python3 qwen2vl_torch.py <dir> [--reps N] [--gen-reps N] [--warmup N] [--threads N]

Prints one line `@@torch <json>` on stdout; progress on stderr. Needs only torch and numpy.
"""

import argparse
import gc
import json
import math
import os
import resource
import statistics
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

LOGIT_TOLERANCE = 1e-3


def log(msg):
    print(f"[qwen2vl_torch] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# safetensors by hand: 8-byte little-endian header length, JSON header, raw little-endian data.

_DTYPES = {"F32": np.float32, "F64": np.float64, "I32": np.int32, "I64": np.int64, "BF16": np.uint16}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {}) or {}
    base = 8 + n
    out = {}
    for name, e in header.items():
        start, end = e["data_offsets"]
        arr = np.frombuffer(data, dtype=_DTYPES[e["dtype"]], count=(end - start) // np.dtype(_DTYPES[e["dtype"]]).itemsize, offset=base + start)
        if e["dtype"] == "BF16":  # bf16 -> f32: the high half of the float32 bits
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        out[name] = torch.from_numpy(arr.reshape(e["shape"]).copy())
    return out, meta


def read_checkpoint(d):
    index = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    weights = {}
    for fn in files:
        w, _ = read_safetensors(os.path.join(d, fn))
        weights.update(w)
    # transformers >= 4.52 names (spec 7.2) back to the hub layout.
    fixed = {}
    for k, v in weights.items():
        if k.startswith("model.visual."):
            k = k[len("model.") :]
        elif k.startswith("model.language_model."):
            k = "model." + k[len("model.language_model.") :]
        fixed[k] = v
    return fixed


# ---------------------------------------------------------------------------------------------
# The model (float32; eager; spec sections 2-4).


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def apply_rotary(x, cos, sin):
    return x * cos + rotate_half(x) * sin


def rope_inv_freq(dim, theta):
    return 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))


class Config:
    def __init__(self, j):
        t = j.get("text_config") or {}
        g = lambda k, d=None: t.get(k, j.get(k, d))  # noqa: E731
        self.vocab = g("vocab_size")
        self.hidden = g("hidden_size")
        self.inter = g("intermediate_size")
        self.layers = g("num_hidden_layers")
        self.heads = g("num_attention_heads")
        self.kv_heads = g("num_key_value_heads", self.heads)
        self.eps = g("rms_norm_eps", 1e-6)
        rope = g("rope_parameters") or g("rope_scaling") or {}
        self.theta = rope.get("rope_theta", g("rope_theta", 10000.0))
        self.mrope_section = list(rope["mrope_section"])
        self.tied = bool(g("tie_word_embeddings", False))
        v = j["vision_config"]
        self.v_depth = v["depth"]
        self.v_dim = v["embed_dim"]
        self.v_heads = v["num_heads"]
        self.v_mlp = int(round(v["embed_dim"] * v.get("mlp_ratio", 4)))
        self.merge = v.get("spatial_merge_size", 2)
        self.image_token = j.get("image_token_id", 151655)
        self.vision_start = j.get("vision_start_token_id", 151652)


class Qwen2VL(torch.nn.Module):
    """Parameters in a dict keyed by the hub names; the forward is written out in functions."""

    def __init__(self, cfg, weights):
        super().__init__()
        self.cfg = cfg
        self.names = sorted(weights)
        self.p = torch.nn.ParameterDict({k.replace(".", "__"): torch.nn.Parameter(v) for k, v in weights.items()})
        self.text_inv_freq = rope_inv_freq(cfg.hidden // cfg.heads, cfg.theta)
        self.vision_inv_freq = rope_inv_freq((cfg.v_dim // cfg.v_heads) // 2, 10000.0)

    def w(self, name):
        return self.p[name.replace(".", "__")]

    # --- vision tower (spec 2) ---------------------------------------------------------------

    def vision_rotary(self, grids):
        m = self.cfg.merge
        hp, wp = [], []
        for t, h, w in grids:
            hpos = torch.arange(h).unsqueeze(1).expand(-1, w)
            wpos = torch.arange(w).unsqueeze(0).expand(h, -1)
            # merge-window order: block row, block col, intra row, intra col (spec 2.3)
            hpos = hpos.reshape(h // m, m, w // m, m).permute(0, 2, 1, 3).flatten()
            wpos = wpos.reshape(h // m, m, w // m, m).permute(0, 2, 1, 3).flatten()
            hp.append(hpos.repeat(t))
            wp.append(wpos.repeat(t))
        hp = torch.cat(hp).float()
        wp = torch.cat(wp).float()
        f = self.vision_inv_freq
        a = torch.cat((hp[:, None] * f[None], wp[:, None] * f[None]), dim=-1)  # [N, head_dim / 2]
        emb = torch.cat((a, a), dim=-1)  # [N, head_dim]
        return emb.cos(), emb.sin()

    def vision_forward(self, pixel_values, grids):
        c = self.cfg
        n = pixel_values.shape[0]
        hd = c.v_dim // c.v_heads
        x = pixel_values @ self.w("visual.patch_embed.proj.weight").reshape(c.v_dim, -1).t()
        cos, sin = self.vision_rotary(grids)
        cos, sin = cos[:, None, :], sin[:, None, :]
        seg = [h * w for t, h, w in grids for _ in range(t)]
        equal = len(set(seg)) == 1
        for i in range(c.v_depth):
            pre = f"visual.blocks.{i}."
            a = F.layer_norm(x, (c.v_dim,), self.w(pre + "norm1.weight"), self.w(pre + "norm1.bias"), 1e-6)
            qkv = F.linear(a, self.w(pre + "attn.qkv.weight"), self.w(pre + "attn.qkv.bias")).reshape(n, 3, c.v_heads, hd)
            q = apply_rotary(qkv[:, 0], cos, sin)
            k = apply_rotary(qkv[:, 1], cos, sin)
            v = qkv[:, 2]
            scale = 1.0 / math.sqrt(hd)
            if equal:  # every segment the same length: one batched attention over [segments, heads, L, hd]
                L = seg[0]
                qs, ks, vs = (t.reshape(-1, L, c.v_heads, hd).transpose(1, 2) for t in (q, k, v))
                p = torch.softmax((qs @ ks.transpose(-1, -2)) * scale, dim=-1)
                o = (p @ vs).transpose(1, 2).reshape(n, c.v_dim)
            else:  # segment by segment (cu_seqlens)
                outs, s0 = [], 0
                for L in seg:
                    qs, ks, vs = (t[s0 : s0 + L].transpose(0, 1) for t in (q, k, v))
                    p = torch.softmax((qs @ ks.transpose(-1, -2)) * scale, dim=-1)
                    outs.append((p @ vs).transpose(0, 1).reshape(L, c.v_dim))
                    s0 += L
                o = torch.cat(outs)
            x = x + F.linear(o, self.w(pre + "attn.proj.weight"), self.w(pre + "attn.proj.bias"))
            m = F.layer_norm(x, (c.v_dim,), self.w(pre + "norm2.weight"), self.w(pre + "norm2.bias"), 1e-6)
            f = F.linear(m, self.w(pre + "mlp.fc1.weight"), self.w(pre + "mlp.fc1.bias"))
            f = f * torch.sigmoid(1.702 * f)  # QuickGELU
            x = x + F.linear(f, self.w(pre + "mlp.fc2.weight"), self.w(pre + "mlp.fc2.bias"))
        z = F.layer_norm(x, (c.v_dim,), self.w("visual.merger.ln_q.weight"), self.w("visual.merger.ln_q.bias"), 1e-6)
        z = z.reshape(n // (c.merge * c.merge), -1)
        z = F.gelu(F.linear(z, self.w("visual.merger.mlp.0.weight"), self.w("visual.merger.mlp.0.bias")))
        return F.linear(z, self.w("visual.merger.mlp.2.weight"), self.w("visual.merger.mlp.2.bias"))

    # --- positions (spec 3.6, no padding) ----------------------------------------------------

    def rope_index(self, ids, grids):
        c = self.cfg
        B, S = ids.shape
        pos = torch.ones(3, B, S, dtype=torch.int64)
        deltas = torch.zeros(B, dtype=torch.int64)
        g = 0
        for b in range(B):
            row = ids[b].tolist()
            parts, st = [], 0
            starts = [i for i in range(S - 1) if row[i] == c.vision_start and row[i + 1] == c.image_token]
            for _ in starts:
                ed = row.index(c.image_token, st)
                t, h, w = grids[g]
                g += 1
                T, Hm, Wm = t, h // c.merge, w // c.merge
                s0 = (parts[-1].max().item() + 1) if parts else 0
                text_len = ed - st
                parts.append(torch.arange(text_len).expand(3, -1) + s0)
                tt = torch.arange(T).view(-1, 1, 1).expand(T, Hm, Wm).flatten()
                hh = torch.arange(Hm).view(1, -1, 1).expand(T, Hm, Wm).flatten()
                ww = torch.arange(Wm).view(1, 1, -1).expand(T, Hm, Wm).flatten()
                parts.append(torch.stack((tt, hh, ww)) + s0 + text_len)
                st = ed + T * Hm * Wm
            if st < S:
                s0 = (parts[-1].max().item() + 1) if parts else 0
                parts.append(torch.arange(S - st).expand(3, -1) + s0)
            p = torch.cat(parts, dim=1)
            pos[:, b] = p
            deltas[b] = p.max() + 1 - S
        return pos, deltas

    def mrope_cos_sin(self, pos):
        # pos [3, B, S] -> cos / sin [B, S, head_dim]: frequency j takes component c of its section.
        f = self.text_inv_freq
        a = pos.float()[..., None] * f  # [3, B, S, hd/2]
        emb = torch.cat((a, a), dim=-1)  # [3, B, S, hd]
        sec = self.cfg.mrope_section * 2
        cos = torch.cat([ch[i % 3] for i, ch in enumerate(emb.cos().split(sec, dim=-1))], dim=-1)
        sin = torch.cat([ch[i % 3] for i, ch in enumerate(emb.sin().split(sec, dim=-1))], dim=-1)
        return cos, sin

    # --- decoder (spec 3) ------------------------------------------------------------------------

    def rms_norm(self, x, name):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.cfg.eps) * self.w(name)

    def decoder(self, h, cos, sin, cache=None):
        c = self.cfg
        B, S, _ = h.shape
        hd = c.hidden // c.heads
        rep = c.heads // c.kv_heads
        cos, sin = cos[:, :, None, :], sin[:, :, None, :]
        for l in range(c.layers):
            pre = f"model.layers.{l}."
            x = self.rms_norm(h, pre + "input_layernorm.weight")
            q = F.linear(x, self.w(pre + "self_attn.q_proj.weight"), self.w(pre + "self_attn.q_proj.bias")).view(B, S, c.heads, hd)
            k = F.linear(x, self.w(pre + "self_attn.k_proj.weight"), self.w(pre + "self_attn.k_proj.bias")).view(B, S, c.kv_heads, hd)
            v = F.linear(x, self.w(pre + "self_attn.v_proj.weight"), self.w(pre + "self_attn.v_proj.bias")).view(B, S, c.kv_heads, hd)
            q = apply_rotary(q, cos, sin).transpose(1, 2)  # [B, H, S, hd]
            k = apply_rotary(k, cos, sin).transpose(1, 2)
            v = v.transpose(1, 2)
            if cache is not None:
                if cache[l] is not None:
                    k = torch.cat((cache[l][0], k), dim=2)
                    v = torch.cat((cache[l][1], v), dim=2)
                cache[l] = (k, v)
            k = k.repeat_interleave(rep, dim=1)  # GQA: query head i uses kv head i // rep
            v = v.repeat_interleave(rep, dim=1)
            scores = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(hd))
            if S > 1:  # causal (prefill / training); a single decode query sees the whole cache
                past = k.shape[2] - S
                mask = torch.ones(S, k.shape[2], dtype=torch.bool).tril(diagonal=past)
                scores = scores.masked_fill(~mask, float("-inf"))
            o = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(B, S, c.hidden)
            h = h + F.linear(o, self.w(pre + "self_attn.o_proj.weight"))
            y = self.rms_norm(h, pre + "post_attention_layernorm.weight")
            gate = F.linear(y, self.w(pre + "mlp.gate_proj.weight"))
            up = F.linear(y, self.w(pre + "mlp.up_proj.weight"))
            h = h + F.linear(F.silu(gate) * up, self.w(pre + "mlp.down_proj.weight"))
        return self.rms_norm(h, "model.norm.weight")

    def lm_head(self):
        return self.w("model.embed_tokens.weight") if self.cfg.tied else self.w("lm_head.weight")

    def embed(self, ids, pixel_values, grids):
        e = F.embedding(ids, self.w("model.embed_tokens.weight"))
        vis = self.vision_forward(pixel_values, grids)
        mask = (ids == self.cfg.image_token).unsqueeze(-1)
        return e.masked_scatter(mask, vis)

    def forward(self, ids, pixel_values, grids):
        pos, deltas = self.rope_index(ids, grids)
        cos, sin = self.mrope_cos_sin(pos)
        return self.decoder(self.embed(ids, pixel_values, grids), cos, sin), pos

    def loss(self, hidden, targets):
        logits = hidden[:, :-1] @ self.lm_head().t()
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)

    @torch.no_grad()
    def generate(self, ids, pixel_values, grids, new_tokens):
        """Greedy decoding with a KV cache: prefill, then one token per step at c + rope_delta."""
        B, S = ids.shape
        pos, deltas = self.rope_index(ids, grids)
        cos, sin = self.mrope_cos_sin(pos)
        cache = [None] * self.cfg.layers
        h = self.decoder(self.embed(ids, pixel_values, grids), cos, sin, cache)
        W = self.lm_head()
        nxt = (h[:, -1] @ W.t()).argmax(-1)
        out = [nxt]
        for step in range(1, new_tokens):
            c = S + step - 1
            p = (c + deltas).view(1, B, 1).expand(3, B, 1)
            cos, sin = self.mrope_cos_sin(p)
            e = F.embedding(nxt.view(B, 1), self.w("model.embed_tokens.weight"))
            h = self.decoder(e, cos, sin, cache)
            nxt = (h[:, -1] @ W.t()).argmax(-1)
            out.append(nxt)
        return torch.stack(out, dim=1)


# ---------------------------------------------------------------------------------------------


def _status_kb(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return None


def rss_bytes():
    return _status_kb("VmRSS")


def reset_peak_rss():
    """Restarts the kernel's RSS high-water mark (VmHWM) at the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes():
    hwm = _status_kb("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def timed(fn, warmup, reps, label):
    samples = []
    for r in range(warmup + reps):
        t0 = time.perf_counter()
        fn()
        t = time.perf_counter() - t0
        if r >= warmup:
            samples.append(t)
        log(f"{label} {'warm-up' if r < warmup else 'run'} {r}: {t:.3f} s")
    return {"median": statistics.median(samples), "samples": samples}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--gen-reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--force", action="store_true", help="time even when parity fails")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    with open(os.path.join(args.dir, "config.json")) as f:
        cfg = Config(json.load(f))
    model = Qwen2VL(cfg, read_checkpoint(args.dir))
    data, meta = read_safetensors(os.path.join(args.dir, "inputs.safetensors"))
    B, S = int(meta["batch"]), int(meta["seq_len"])
    ids = data["input_ids"].long().reshape(B, S)
    pix = data["pixel_values"]
    grids = data["image_grid_thw"].long().reshape(-1, 3).tolist()
    targets = data["targets"].long().reshape(B, S - 1)
    new_tokens = int(meta["new_tokens"])
    head = int(meta["grad_head"])
    names = json.loads(meta["param_names"])
    gc.collect()
    rss_loaded = rss_bytes()  # the model and the inputs, before any forward
    blas = "openblas" if "openblas" in torch.__config__.show().lower() else None
    if blas is None:
        try:
            with open("/proc/self/maps") as f:
                blas = "openblas" if "openblas" in f.read() else "unknown (no OpenBLAS mapped)"
        except OSError:
            blas = "unknown"

    # ---- parity (before any timing) ----
    with torch.no_grad():
        hidden, pos = model(ids, pix, grids)
        lp_pos = data["ref.logit_positions"].long()
        rows = hidden[:, lp_pos].reshape(-1, cfg.hidden)
        logits = rows @ model.lm_head().t()
        ref_logits = data["ref.logits"].reshape(logits.shape)
        lp = torch.cat(  # row by row: no [B, S, V] buffer raises this process's memory high-water mark
            [
                torch.log_softmax(hidden[b, :-1] @ model.lm_head().t(), -1)
                .gather(-1, targets[b].clamp(min=0).unsqueeze(-1))
                .squeeze(-1)
                for b in range(B)
            ]
        )
        lp = torch.where(targets.reshape(-1) == -100, torch.zeros_like(lp), lp)
        parity = {
            "positionsEqual": bool(torch.equal(pos.reshape(-1), data["ref.position_ids"].long())),
            "hiddenMaxAbs": (hidden.reshape(-1) - data["ref.hidden"]).abs().max().item(),
            "logitsMaxAbs": (logits - ref_logits).abs().max().item(),
            "logitsMaxAbsRef": ref_logits.abs().max().item(),
            "logprobsMaxAbs": (lp - data["ref.logprobs"]).abs().max().item(),
        }
        del lp
    loss = model.loss(model(ids, pix, grids)[0], targets)
    loss.backward()
    ref_norms = data["ref.grad_norms"]
    ref_heads = data["ref.grad_heads"].reshape(len(names), head)
    worst_norm, worst_head, worst_name = 0.0, 0.0, None
    for i, n in enumerate(names):
        g = model.w(n).grad
        g = torch.zeros_like(model.w(n)) if g is None else g
        rel = abs(g.double().norm().item() - ref_norms[i].item()) / max(ref_norms[i].item(), 1e-12)  # float64: a float32 norm of 2M values is off by ~1e-4
        if rel > worst_norm:
            worst_norm, worst_name = rel, n
        flat = g.reshape(-1)[:head]
        ref = ref_heads[i, : flat.numel()]
        worst_head = max(worst_head, ((flat - ref).abs().max() / max(ref.abs().max().item(), 1e-12)).item())
    parity.update(
        {
            "loss": loss.item(),
            "lossAbsDiff": abs(loss.item() - data["ref.loss"].item()),
            "gradNormMaxRelDiff": worst_norm,
            "gradNormWorstParam": worst_name,
            "gradHeadMaxRelDiff": worst_head,
        }
    )
    model.zero_grad(set_to_none=True)
    gen_ids = model.generate(ids, pix, grids, new_tokens)
    ref_gen = data["ref.generated_ids"].long().reshape(B, new_tokens)
    same = (gen_ids == ref_gen).float()
    first_diff = [int((row == 0).nonzero()[0]) if (row == 0).any() else new_tokens for row in same]
    parity.update({"generatedEqual": int(same.sum().item()), "generatedTotal": B * new_tokens, "generatedFirstDiff": first_diff})
    parity["ok"] = bool(parity["positionsEqual"] and parity["logitsMaxAbs"] <= LOGIT_TOLERANCE)
    log(f"parity {json.dumps(parity)}")
    result = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "blas": blas,
        "ompWaitPolicy": os.environ.get("OMP_WAIT_POLICY"),
        "parity": parity,
    }
    if not parity["ok"] and not args.force:
        print("@@torch " + json.dumps(result), flush=True)
        sys.exit(3)

    # ---- timing ----
    def step():
        model.zero_grad(set_to_none=True)
        h, _ = model(ids, pix, grids)
        l = model.loss(h, targets)
        l.backward()

    def forward_only():
        with torch.no_grad():
            model.loss(model(ids, pix, grids)[0], targets).item()

    gc.collect()
    peak_reset = reset_peak_rss()
    fwd_bwd = timed(step, args.warmup, args.reps, "fwd+bwd")
    peak_fwd_bwd = peak_rss_bytes()
    model.zero_grad(set_to_none=True)
    fwd = timed(forward_only, args.warmup, args.reps, "forward")
    reset_peak_rss()
    gen = timed(lambda: model.generate(ids, pix, grids, new_tokens), args.warmup, args.gen_reps, "generate")
    result.update(
        {
            "tokens": B * S,
            "fwdBwd": fwd_bwd,
            "forward": fwd,
            "gen": {**gen, "newTokens": B * new_tokens},
            "rssLoadedBytes": rss_loaded,
            "peakRssFwdBwdBytes": peak_fwd_bwd,
            "peakRssGenBytes": peak_rss_bytes(),
            "peakRssReset": peak_reset,
        }
    )
    print("@@torch " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

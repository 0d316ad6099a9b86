"""Choosing the emoji-captions image/token settings on a validation split, never on test.

``dssl benchmark real --datasets emoji-captions`` splits 600 test rows per seed. This script
takes the seed-0 *training* rows only, holds out ``--valid-size`` of them (stratified by group)
as validation, fits CLIP with the image and token kinds on the rest for each candidate setting
and scores image → caption and caption → image retrieval among the validation rows. The test
rows are never read.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/tune_emoji.py --candidates current,crop50,cnn8

Writes ``benchmarks/results/tune_emoji.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _common import machine_info, set_threads, write_json

from disentangled_ssl import DisentangledSSL
from disentangled_ssl.data.augment import ImageAugment, TokenAugment
from disentangled_ssl.data.datasets import load_dataset
from disentangled_ssl.experiments.real import (
    RealBenchmarkConfig,
    _estimator,
    _vector_views,
    both_ways,
)
from disentangled_ssl.nn.modalities import Image, Tokens, Vector

#: name -> changes from the first runner's settings (CNN width 16 with global pooling, one
#: Transformer layer of width 64, 120 epochs): "image" / "tokens" (kind arguments), "crop"
#: (the crop scale range), "lr", "epochs", "standardize_pixels" (each pixel of each channel
#: to mean 0 and std 1 over the fitting rows, as ``standardize=True`` does for vectors),
#: "token_augment" (TokenAugment arguments; default off), "pixels_mlp" / "words_mlp" (that
#: view as the vector rows see it, flattened pixels or a bag of words, through the vector
#: MLP with its noise and feature-drop augmentation).
CANDIDATES: dict[str, dict] = {
    "current": {},
    "crop50": {"crop": (0.5, 1.0)},
    "cnn8": {"image": {"cnn_width": 8}},
    "tokens_d32": {"tokens": {"d_model": 32}},
    "epochs60": {"epochs": 60},
    "epochs240": {"epochs": 240},
    "lr1e-3": {"lr": 1e-3},
    "tokens0": {"tokens": {"n_layers": 0}},
    "tokens0_d128": {"tokens": {"n_layers": 0, "d_model": 128}},
    "pixstd": {"standardize_pixels": True},
    "pixstd_tokens0": {"standardize_pixels": True, "tokens": {"n_layers": 0}},
    "pool2_tokens0": {"image": {"pool": 2}, "tokens": {"n_layers": 0}},
    "pool4_tokens0": {"image": {"pool": 4}, "tokens": {"n_layers": 0}},
    "pool4_tokens0_masking": {"image": {"pool": 4}, "tokens": {"n_layers": 0},
                              "token_augment": {}},
    "pool4_tokens0_masking30": {"image": {"pool": 4}, "tokens": {"n_layers": 0},
                                "token_augment": {"mask_fraction": 0.3, "drop_fraction": 0.3}},
    "pool4_tokens1": {"image": {"pool": 4}},
    "pixels_mlp_tokens0": {"pixels_mlp": True, "tokens": {"n_layers": 0}},
    "pool4_words_mlp": {"image": {"pool": 4}, "words_mlp": True},
}

#: The candidate flags that put view k (0: image, 1: caption) through the vector MLP.
MLP_FLAGS = ("pixels_mlp", "words_mlp")


def estimator(candidate: dict, vocab_size: int, seed: int) -> DisentangledSSL:
    image = {"cnn_width": 16, **candidate.get("image", {})}
    tokens = {"d_model": 64, "n_layers": 1, **candidate.get("tokens", {})}
    token_augment = candidate.get("token_augment")
    modalities: list = [Image(**image), Tokens(vocab_size=vocab_size, **tokens)]
    augment: list = [ImageAugment(crop_scale=candidate.get("crop", (0.8, 1.0)), flip_p=0.0,
                                  brightness=0.0, contrast=0.0, saturation=0.0),
                     TokenAugment(**token_augment) if token_augment is not None
                     else TokenAugment(enabled=False)]
    for k, flag in enumerate(MLP_FLAGS):
        if candidate.get(flag):  # the vector kind with its own (noise, drop) augmentation
            modalities[k], augment[k] = Vector(), None
    return DisentangledSSL(
        method="clip", modalities=tuple(modalities),
        augmentations=augment, lr=candidate.get("lr", 2e-3),
        epochs=candidate.get("epochs", 120), shared_dim=64, specific_dim=64, batch_size=128,
        standardize=True, random_state=seed, verbose=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", default="current,crop50,cnn8")
    parser.add_argument("--valid-size", type=int, default=500)
    parser.add_argument("--test-size", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    set_threads(args.threads)
    machine = machine_info()
    data = load_dataset("emoji-captions")
    train, _test = data.stratified_split("group", args.test_size, seed=args.seed)
    fit, valid = train.stratified_split("group", args.valid_size, seed=args.seed + 1000)
    vocab = data.vocabularies[data.view_names[1]]
    results = {}
    vectors = _vector_views(fit, valid)  # (fit views, valid views) as the vector rows see them
    for name in args.candidates.split(","):
        tic = time.perf_counter()
        if name == "vector":  # the runner's vector rows: pixels + bag of words, MLP
            config = RealBenchmarkConfig()
            fit_v, valid_v = vectors
            est = _estimator(config, args.seed, method="clip", epochs=config.shared_epochs
                             ).fit(*fit_v)
            emb = est.transform(*valid_v)
            scores = both_ways(emb.shared1, emb.shared2)
            results[name] = {"candidate": "vector MLP (the runner's *_vector rows)", **scores,
                             "final_loss": est.history_["clip"][-1]["loss"],
                             "seconds": round(time.perf_counter() - tic, 1)}
            print(f"{name:<16} i->c top-1 {scores['top1']:.3f} MRR {scores['mrr']:.3f}   "
                  f"c->i top-1 {scores['rev_top1']:.3f} MRR {scores['rev_mrr']:.3f}", flush=True)
            continue
        images = [fit.views[0], valid.views[0]]
        if CANDIDATES[name].get("standardize_pixels"):
            mean, std = images[0].mean(0), images[0].std(0) + 1e-3
            images = [(x - mean) / std for x in images]
        views = [images, [fit.views[1], valid.views[1]]]
        for k, flag in enumerate(MLP_FLAGS):
            if CANDIDATES[name].get(flag):
                views[k] = [vectors[0][k], vectors[1][k]]
        est = estimator(CANDIDATES[name], len(vocab), args.seed).fit(views[0][0], views[1][0])
        emb = est.transform(views[0][1], views[1][1])
        scores = both_ways(emb.shared1, emb.shared2)
        results[name] = {"candidate": CANDIDATES[name], **scores,
                         "final_loss": est.history_["clip"][-1]["loss"],
                         "seconds": round(time.perf_counter() - tic, 1)}
        print(f"{name:<16} i->c top-1 {scores['top1']:.3f} MRR {scores['mrr']:.3f}   c->i top-1 "
              f"{scores['rev_top1']:.3f} MRR {scores['rev_mrr']:.3f}   final loss "
              f"{results[name]['final_loss']:.3f} ({results[name]['seconds']:.0f} s)",
              flush=True)
    write_json("tune_emoji", {"benchmark": "tune_emoji", "machine": machine,
                              "settings": {"n_fit": len(fit), "n_valid": len(valid),
                                           "seed": args.seed, "split": "seed-0 training rows "
                                           "only; test rows never read"},
                              "results": results}, args.out)


if __name__ == "__main__":
    main()

"""The learned scorer on a synthetic but honest task: held-out AUC, and how many reviews the "most
useful next" order saves against reviewing in random order.

Pictures are generated so that the label depends on what they show: a room-like backdrop with a few
large pieces of "furniture" (either class), plus 0 to 30 small objects; people "keep" a picture with at
least 12 small objects (cluttered) and "reject" the rest, so pictures near 12 are hard. Colours,
sizes and positions are random, so no single colour or corner gives the label away. Each picture is
embedded by the product's CLIP model (`ClipScorer.encode_images`, ViT-B-32 with the random weights of
SCENEIMG_CLIP_PRETRAINED=none) and cached under var/bench/.

1. Held-out AUC: `curation.learned.fit` on every labelled picture (its own stratified held-out split).
2. Active learning: a pool and a fixed test set. Starting from 20 random reviews, each round trains
   the probe (`curation.learned.train_probe`) and asks for `--batch` (40) more reviews, either the pool pictures
   whose probability is closest to 0.5 (the gallery's `sort=uncertain`) or random ones, until the test
   AUC reaches the target (by default 98 % of the AUC with the whole pool reviewed). It prints the
   reviews each order needed, averaged over seeds, and their ratio (the gain).

    .venv/bin/python bench/learned.py [--n 1600] [--seeds 2] [--batch 40]

Anchor: none published for this task; the figures are the gain (random / uncertain, above 1 means
the uncertain-first order needs fewer reviews) and the held-out AUC against SCENEIMG_LEARNED_MIN_AUC.
"""
import argparse
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CLUTTER_AT = 12
SIZE = 224


def setup_django():
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sceneimg_site.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["SCENEIMG_CLIP_PRETRAINED"] = "none"
    import django

    django.setup()


def picture(seed):
    """(uint8 [3, S, S], small-object count): a backdrop, a few large pieces, 0..30 small objects."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    colour = lambda: tuple(rng.randrange(256) for _ in range(3))  # noqa: E731
    im = Image.new("RGB", (SIZE, SIZE), colour())
    draw = ImageDraw.Draw(im)
    draw.rectangle([0, rng.randrange(SIZE // 2, SIZE), SIZE, SIZE], fill=colour())  # a floor
    for _ in range(rng.randint(1, 3)):  # furniture
        x, y = rng.randrange(SIZE), rng.randrange(SIZE)
        draw.rectangle([x, y, x + rng.randrange(40, 110), y + rng.randrange(30, 90)], fill=colour())
    small = rng.randint(0, 30)
    for _ in range(small):
        x, y, r = rng.randrange(SIZE), rng.randrange(SIZE), rng.randrange(3, 11)
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape([x - r, y - r, x + r, y + r], fill=colour())
    return np.asarray(im).transpose(2, 0, 1), small


def embedded_task(n):
    cache = ROOT / "var" / "bench" / f"learned-{n}.npz"
    if cache.exists():
        data = np.load(cache)
        return data["x"], data["y"]
    import torch

    from curation.clip import get_clip_scorer

    scorer = get_clip_scorer("cpu")
    xs, ys = [], []
    t0 = time.perf_counter()
    for start in range(0, n, 32):
        pics = [picture(seed) for seed in range(start, min(n, start + 32))]
        xs.append(scorer.encode_images(torch.from_numpy(np.stack([p for p, _ in pics]))))
        ys += [int(small >= CLUTTER_AT) for _, small in pics]
    print(f"embedded {n} pictures in {time.perf_counter() - t0:.0f} s (random-weight ViT-B-32, CPU)")
    x, y = np.concatenate(xs).astype(np.float32), np.asarray(ys, dtype=np.int64)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, x=x, y=y)
    return x, y


def test_auc(x, y, coef, intercept):
    from sklearn.metrics import roc_auc_score

    from curation.learned import probability

    return roc_auc_score(y, probability(x, coef, intercept))


def reviews_needed(pool_x, pool_y, test_x, test_y, target, order, seed, limit, batch):
    from curation.learned import probability, train_probe

    rng = np.random.default_rng(seed)
    keeps, rejects = np.flatnonzero(pool_y == 1), np.flatnonzero(pool_y == 0)
    labelled = list(rng.choice(keeps, 10, replace=False)) + list(rng.choice(rejects, 10, replace=False))
    while True:
        coef, intercept = train_probe(pool_x[labelled], pool_y[labelled])
        if test_auc(test_x, test_y, coef, intercept) >= target or len(labelled) >= limit:
            return len(labelled)
        rest = np.setdiff1d(np.arange(len(pool_y)), labelled)
        if order == "uncertain":
            doubt = np.abs(probability(pool_x[rest], coef, intercept) - 0.5)
            labelled += list(rest[np.argsort(doubt, kind="stable")[:batch]])
        else:
            labelled += list(rng.choice(rest, batch, replace=False))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1600)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--batch", type=int, default=40, help="reviews asked for per round")
    parser.add_argument("--target-share", type=float, default=0.98,
                        help="target test AUC as a share of the AUC with the whole pool reviewed")
    args = parser.parse_args()
    setup_django()
    from django.conf import settings

    from curation.learned import fit, train_probe

    x, y = embedded_task(args.n)
    print(f"{len(y)} pictures, {int(y.sum())} cluttered (keep), {int(len(y) - y.sum())} not")
    _, _, metrics, train, held = fit(x, y)
    print(f"held-out AUC {metrics['auc']:.3f} (precision {metrics['precision']:.3f}, recall {metrics['recall']:.3f}; "
          f"trained on {len(train)}, held out {len(held)}); SCENEIMG_LEARNED_MIN_AUC {settings.SCENEIMG_LEARNED_MIN_AUC}: "
          f"ratio {metrics['auc'] / settings.SCENEIMG_LEARNED_MIN_AUC:.2f}")

    test = np.arange(len(y)) >= len(y) * 3 // 4
    pool_x, pool_y, test_x, test_y = x[~test], y[~test], x[test], y[test]
    full = test_auc(test_x, test_y, *train_probe(pool_x, pool_y))
    target = args.target_share * full
    print(f"active learning: pool {len(pool_y)}, test {len(test_y)}; whole pool reviewed: test AUC {full:.3f}; "
          f"target {target:.3f}; {args.batch} reviews a round")
    needed = {"uncertain": [], "random": []}
    for seed in range(args.seeds):
        for order in needed:
            needed[order].append(reviews_needed(pool_x, pool_y, test_x, test_y, target, order, seed, len(pool_y),
                                                args.batch))
        print(f"  seed {seed}: uncertain first {needed['uncertain'][-1]} reviews, random {needed['random'][-1]}")
    u, r = np.mean(needed["uncertain"]), np.mean(needed["random"])
    print(f"reviews to reach AUC {target:.3f}: most useful next {u:.0f}, random order {r:.0f}: gain {r / u:.2f}x")


if __name__ == "__main__":
    main()

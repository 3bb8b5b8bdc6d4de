#!/usr/bin/python3
"""Pillow reference outputs for tests/server/preprocess/pil_parity_test.cc.

The test writes its inputs and a job file to a temporary directory and runs this script with
Debian's /usr/bin/python3 (python3-pil); nothing is committed, so there is nothing to
regenerate. Each line of the job file is one job:

  decode IN OUT
      OUT <- raw RGB8 of PIL.Image.open(IN).convert("RGB")   (torchvision's pil_loader)
  draft IN SCALE OUT
      as decode, after im.draft("RGB", ...) asks libjpeg for a 1/SCALE DCT-scaled decode
  resize IN WIDTH HEIGHT RESIZE CROP FILTER OUT
      IN is raw RGB8, WIDTH x HEIGHT; FILTER is bilinear or bicubic;
      OUT <- raw RGB8 of CenterCrop(CROP)(Resize(RESIZE, FILTER)(img)) with torchvision 0.14
      semantics on a PIL image (the two functions below restate them without importing torch)

On success it prints "ok N" (N jobs). Without Pillow it exits with status 2 and says what to
install, so the C++ test fails with that message instead of skipping.

  tools/pil_reference.py --self-check
checks the restated torchvision arithmetic against torchvision.transforms itself on a sweep
of sizes (needs python3-torchvision); rerun it when torchvision changes.
"""

import sys

try:
    from PIL import Image
except ImportError as e:  # pragma: no cover - exercised on machines without python3-pil
    sys.stderr.write(
        "pil_reference.py: Pillow is required (Debian: apt-get install python3-pil): %s\n" % e)
    sys.exit(2)

FILTERS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}


def resized_size(w, h, size):
    """torchvision.transforms.functional._compute_resized_output_size for Resize(int)."""
    short, long_ = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long_ / short)
    return (new_short, new_long) if w <= h else (new_long, new_short)


def center_crop(img, crop):
    """torchvision.transforms.functional.center_crop on a PIL image (zero padding first)."""
    w, h = img.size
    if crop > w or crop > h:
        left = (crop - w) // 2 if crop > w else 0
        top = (crop - h) // 2 if crop > h else 0
        padded = Image.new(img.mode, (w + (crop - w if crop > w else 0),
                                      h + (crop - h if crop > h else 0)))
        padded.paste(img, (left, top))
        img = padded
        w, h = img.size
        if (w, h) == (crop, crop):
            return img
    top = int(round((h - crop) / 2.0))
    left = int(round((w - crop) / 2.0))
    return img.crop((left, top, left + crop, top + crop))


def resize_crop(img, size, crop, resample):
    new_w, new_h = resized_size(img.width, img.height, size)
    if (new_w, new_h) != img.size:  # torchvision returns the image untouched otherwise
        img = img.resize((new_w, new_h), resample)
    return center_crop(img, crop)


def run_jobs(path):
    count = 0
    with open(path) as jobs:
        for line in jobs:
            parts = line.split()
            if not parts:
                continue
            kind = parts[0]
            if kind == "decode":
                _, src, dst = parts
                with Image.open(src) as im:
                    out = im.convert("RGB")
            elif kind == "draft":
                _, src, scale, dst = parts
                scale = int(scale)
                with Image.open(src) as im:
                    im.draft("RGB", (im.width // scale, im.height // scale))
                    out = im.convert("RGB")
            elif kind == "resize":
                _, src, w, h, size, crop, filt, dst = parts
                with open(src, "rb") as f:
                    img = Image.frombytes("RGB", (int(w), int(h)), f.read())
                out = resize_crop(img, int(size), int(crop), FILTERS[filt])
            else:
                raise SystemExit("pil_reference.py: unknown job %r" % kind)
            with open(dst, "wb") as f:
                f.write(out.tobytes())
            count += 1
    print("ok", count)


def self_check():
    import random

    import torchvision.transforms as T
    from torchvision.transforms import InterpolationMode

    rng = random.Random(1)
    modes = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC}
    checked = 0
    for _ in range(300):
        w, h = rng.randint(1, 700), rng.randint(1, 700)
        size, crop = rng.choice([(256, 224), (320, 300), (232, 224), (200, 224), (7, 5)])
        filt = rng.choice(sorted(modes))
        img = Image.frombytes("RGB", (w, h), bytes(rng.getrandbits(8) for _ in range(w * h * 3)))
        want = T.CenterCrop(crop)(T.Resize(size, modes[filt])(img))
        got = resize_crop(img, size, crop, FILTERS[filt])
        assert got.size == want.size and got.tobytes() == want.tobytes(), (w, h, size, crop, filt)
        checked += 1
    print("self-check ok: %d cases match torchvision.transforms" % checked)


if __name__ == "__main__":
    if len(sys.argv) == 2 and sys.argv[1] == "--self-check":
        self_check()
    elif len(sys.argv) == 2:
        run_jobs(sys.argv[1])
    else:
        raise SystemExit(__doc__)

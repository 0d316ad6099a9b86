"""Rebuild ``src/disentangled_ssl/data/files/emoji_captions.npz`` from Debian's packages.

The real image ↔ caption pairs of the ``emoji-captions`` dataset: every fully-qualified emoji
of Unicode's ``emoji-test.txt`` (``unicode-data``), rendered by Noto Color Emoji
(``fonts-noto-color-emoji``, SIL Open Font License 1.1) with Pillow's FreeType at its bitmap
size 109, composited on white and downscaled to 32 × 32 RGB; its caption is the CLDR English
name and keywords (``unicode-cldr-core``: ``common/annotations/en.xml`` and
``annotationsDerived/en.xml``); its labels are the emoji group, subgroup and skin tone.

Run (Debian/Ubuntu)::

    apt-get install fonts-noto-color-emoji unicode-cldr-core unicode-data
    python scripts/build_emoji_captions.py      # writes the .npz and the licence files

Pillow needs FreeType and libraqm (for ZWJ sequences and flags as one glyph); the script
checks both. The output is deterministic for given package versions (recorded in the file).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, features

FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
EMOJI_TEST = Path("/usr/share/unicode/emoji/emoji-test.txt")
CLDR = Path("/usr/share/unicode/cldr/common")
OUT = Path(__file__).resolve().parents[1] / "src/disentangled_ssl/data/files"
SKIN_TONES = {"\U0001F3FB": "light", "\U0001F3FC": "medium-light", "\U0001F3FD": "medium",
              "\U0001F3FE": "medium-dark", "\U0001F3FF": "dark"}


def emoji_list() -> list[tuple[str, str, str, str]]:
    """(emoji, group, subgroup, emoji-test name) of every fully-qualified emoji."""
    rows, group, subgroup = [], "", ""
    for line in EMOJI_TEST.read_text(encoding="utf-8").splitlines():
        if line.startswith("# group:"):
            group = line.split(":", 1)[1].strip()
        elif line.startswith("# subgroup:"):
            subgroup = line.split(":", 1)[1].strip()
        elif "; fully-qualified" in line and "#" in line and group != "Component":
            codes = line.split(";")[0].split()
            emoji = "".join(chr(int(c, 16)) for c in codes)
            name = re.sub(r"^\S+\s+E\d+\.\d+\s+", "", line.split("#", 1)[1].strip())
            rows.append((emoji, group, subgroup, name))
    return rows


def annotations() -> dict[str, tuple[str, list[str]]]:
    """emoji -> (tts name, keywords) from CLDR's annotations and derived annotations."""
    out: dict[str, tuple[str, list[str]]] = {}
    for path in (CLDR / "annotations/en.xml", CLDR / "annotationsDerived/en.xml"):
        for node in ET.parse(path).getroot().iter("annotation"):
            cp, text = node.get("cp"), (node.text or "").strip()
            name, keywords = out.get(cp, ("", []))
            if node.get("type") == "tts":
                name = text
            else:
                keywords = [k.strip() for k in text.split("|") if k.strip()]
            out[cp] = (name, keywords)
    return out


def render(emoji: str, font: ImageFont.FreeTypeFont, size: int) -> np.ndarray | None:
    """(3, size, size) uint8 on white, or None when the font draws no single glyph for it."""
    canvas = Image.new("RGBA", (320, 160), (255, 255, 255, 0))
    ImageDraw.Draw(canvas).text((10, 10), emoji, font=font, embedded_color=True)
    box = canvas.getbbox()
    if box is None or (box[2] - box[0]) > 1.6 * (box[3] - box[1]):
        return None  # nothing drawn, or several glyphs side by side (not in the font)
    glyph = canvas.crop(box)
    side = max(glyph.size)
    square = Image.new("RGBA", (side, side), (255, 255, 255, 0))
    square.paste(glyph, ((side - glyph.size[0]) // 2, (side - glyph.size[1]) // 2))
    white = Image.new("RGBA", square.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, square).convert("RGB").resize((size, size),
                                                                     Image.Resampling.LANCZOS)
    return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)


def package_version(name: str) -> str:
    try:
        return subprocess.run(["dpkg-query", "-W", "-f=${Version}", name], check=True,
                              capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=32, help="image side in pixels")
    p.add_argument("--out", type=Path, default=OUT / "emoji_captions.npz")
    args = p.parse_args()
    if not (features.check("freetype2") and features.check("raqm")):
        raise SystemExit("Pillow needs FreeType and libraqm (ZWJ sequences, flags)")
    font = ImageFont.truetype(str(FONT), 109)
    names = annotations()
    images, emojis, captions, groups, subgroups, tones = [], [], [], [], [], []
    skipped = 0
    for emoji, group, subgroup, test_name in emoji_list():
        image = render(emoji, font, args.size)
        if image is None:
            skipped += 1
            continue
        name, keywords = names.get(emoji, names.get(emoji.replace("\ufe0f", ""), ("", [])))
        name = name or test_name
        words = [name, *[k for k in keywords if k != name]]
        tone = [t for c, t in SKIN_TONES.items() if c in emoji]
        images.append(image)
        emojis.append(emoji)
        captions.append(" | ".join(words))
        groups.append(group)
        subgroups.append(subgroup)
        tones.append(tone[0] if len(set(tone)) == 1 else ("mixed" if tone else "none"))
    np.savez_compressed(
        args.out, images=np.stack(images), emoji=np.array(emojis), caption=np.array(captions),
        group=np.array(groups), subgroup=np.array(subgroups), skin_tone=np.array(tones),
        sources=np.array([f"fonts-noto-color-emoji {package_version('fonts-noto-color-emoji')}",
                          f"unicode-cldr-core {package_version('unicode-cldr-core')}",
                          f"unicode-data {package_version('unicode-data')}"]))
    print(f"wrote {args.out}: {len(images)} emoji ({skipped} skipped: no single glyph), "
          f"{args.out.stat().st_size / 2**20:.2f} MB")


if __name__ == "__main__":
    main()

"""Draw a TF tree picture (PNG) from the frames a real run published.

    python scripts/draw_tf_tree.py FRAMES.json OUT.png [--root-chain base_link,camera_link]

FRAMES.json: ``python -m dpa_ros.ros.demo_client --json`` output (its ``frames``: child, parent,
xyz in metres). ``--root-chain`` draws the robot frames a MoveIt setup puts above the optical
frame (dashed: not published by dpa_ros). Graphviz is not installed here, so PIL draws the tree.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

BOX_W, BOX_H, GAP_X, GAP_Y = 250, 46, 24, 70


def draw(frames: list[dict], chain: list[str], out: Path) -> Path:
    parent = frames[0]["parent"]
    children = [f for f in frames if f["parent"] == parent]
    levels = [[(c, True) for c in chain]] if chain else []
    rows = [[(name, False)] for name, _ in (levels[0] if levels else [])] + [[(parent, True)]]
    rows.append([(f"{f['child']}\n({f['xyz'][0]:+.2f}, {f['xyz'][1]:+.2f}, {f['xyz'][2]:+.2f}) m", True)
                 for f in children])
    width = max(len(r) for r in rows) * (BOX_W + GAP_X) + GAP_X
    height = len(rows) * (BOX_H + GAP_Y) + GAP_Y
    img = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    centres = []
    for r, row in enumerate(rows):
        y = GAP_Y // 2 + r * (BOX_H + GAP_Y)
        x0 = (width - len(row) * (BOX_W + GAP_X) + GAP_X) // 2
        row_centres = []
        for i, (text, published) in enumerate(row):
            x = x0 + i * (BOX_W + GAP_X)
            colour = (30, 90, 200) if published else (150, 150, 150)
            if published:
                d.rectangle([x, y, x + BOX_W, y + BOX_H], outline=colour, width=2)
            else:
                for k in range(x, x + BOX_W, 10):  # dashed: frames of the robot, not of dpa_ros
                    d.line([k, y, min(k + 5, x + BOX_W), y], fill=colour, width=2)
                    d.line([k, y + BOX_H, min(k + 5, x + BOX_W), y + BOX_H], fill=colour, width=2)
                d.line([x, y, x, y + BOX_H], fill=colour, width=2)
                d.line([x + BOX_W, y, x + BOX_W, y + BOX_H], fill=colour, width=2)
            d.multiline_text((x + BOX_W // 2, y + BOX_H // 2), text, fill="black", font=font, anchor="mm",
                             align="center")
            row_centres.append((x + BOX_W // 2, y, y + BOX_H))
        centres.append(row_centres)
    for upper, lower in zip(centres, centres[1:]):
        for cx, top, _ in lower:
            ux, _, ubottom = upper[0]
            d.line([ux, ubottom, cx, top], fill=(60, 60, 60), width=2)
    d.text((8, height - 16), "solid: the image's optical frame and the object frames dpa_reconstructor "
           "publishes under it (/tf_static); dashed: your robot's TF",
           fill=(90, 90, 90), font=font)
    img.save(out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("frames_json", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--root-chain", default="base_link,camera_link")
    args = ap.parse_args()
    frames = json.loads(args.frames_json.read_text())["frames"]
    if not frames:
        raise SystemExit("no object frames in the run's output")
    chain = [c for c in args.root_chain.split(",") if c]
    print(draw(frames, chain, args.out))


if __name__ == "__main__":
    main()

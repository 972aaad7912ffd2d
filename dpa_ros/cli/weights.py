"""``dpa-weights``: check (offline) or download the model weights of a profile.

    dpa-weights check --profile paper [--weights-dir DIR] [--config FILE]
    dpa-weights download --profile paper [--weights-dir DIR] [--timeout 30]
    dpa-weights convert omnidata CKPT OUT_DIR [--num-heads 12] [--num-groups 32]

``check`` lists every model of the profile with the size it downloads (from
:mod:`dpa_ros.priors.hub_files`) and the total, and, per model, what is missing or damaged (a
truncated file is named as such). It exits 0 when every weight is here and whole, 1 otherwise, and
never uses the network.
``convert omnidata`` turns an Omnidata DPT-Hybrid depth checkpoint (``omnidata_dpt_depth_v2.ckpt``,
CC-BY-NC) into a transformers directory plus ``OUT_DIR/dpa_profile.yaml`` selecting it as the depth
model (:mod:`dpa_ros.priors.omnidata`).
``download`` fetches what is missing from the Hugging Face hub (needs network) into ``DIR`` (as
``DIR/<org>--<name>/``) or, without ``--weights-dir``, into the Hugging Face cache.
"""
from __future__ import annotations

import argparse
import sys

from dpa_ros.priors import weights
from dpa_ros.priors.errors import ReconstructionError
from dpa_ros.priors.profiles import load_profile


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dpa-weights", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("check", "list the profile's weights, their sizes and what is missing (offline)"),
                            ("download", "fetch the profile's missing weights from the Hugging Face hub")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--profile", default="paper", help="profile name (paper, fast, smoke)")
        p.add_argument("--config", default=None, help="a profile YAML file or a directory of them")
        p.add_argument("--weights-dir", default=None,
                       help="weights directory (default $DPA_WEIGHTS_DIR, else the HF cache)")
        if name == "download":
            p.add_argument("--timeout", type=float, default=30.0, help="seconds per connection attempt")
    conv = sub.add_parser("convert", help="convert a checkpoint of another layout into a transformers directory")
    conv.add_argument("kind", choices=("omnidata",), help="the checkpoint's origin")
    conv.add_argument("ckpt", help="the checkpoint file (omnidata_dpt_depth_v2.ckpt)")
    conv.add_argument("out_dir", help="output directory, e.g. WEIGHTS_DIR/EPFL-VILAB--omnidata-dpt-hybrid-depth")
    conv.add_argument("--num-heads", type=int, default=None, help="ViT attention heads (default hidden size / 64)")
    conv.add_argument("--num-groups", type=int, default=32, help="GroupNorm groups of the BiT backbone")
    args = parser.parse_args(argv)
    if args.command == "convert":
        return _convert(args)
    try:
        profile = load_profile(args.profile, args.config)
    except ReconstructionError as exc:
        print(f"dpa-weights: {exc}", file=sys.stderr)
        return 2
    if args.command == "check":
        return _check(profile, args)
    try:
        weights.download(profile, args.weights_dir, timeout_s=args.timeout)
    except Exception as exc:  # network, auth, disk: report in one line
        print(f"dpa-weights: download failed: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
        return 1
    return 0


def _convert(args) -> int:
    from dpa_ros.priors.omnidata import convert_omnidata

    try:
        report = convert_omnidata(args.ckpt, args.out_dir, args.num_heads, args.num_groups)
    except ReconstructionError as exc:
        print(f"dpa-weights: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out_dir}: {report['tensors']} tensors (dropped {len(report['dropped'])}: "
          f"{', '.join(report['dropped']) or 'none'})")
    print(f"use it: DPA_WEIGHTS_DIR={report['weights_dir']} dpa-reconstruct --profile paper "
          f"--config {report['profile']} ...  (model_id {report['model_id']}, output: depth)")
    return 0


def _check(profile, args) -> int:
    statuses = weights.check(profile, args.weights_dir)
    if not statuses:
        print(f"profile {args.profile}: no weights needed (models are built from configs)")
        return 0
    total, unknown = 0, False
    for st in statuses:
        size = st.spec.download_bytes()
        total += size or 0
        unknown |= size is None
        state = "ok     " if st.ok else ("missing" if st.path is None else "damaged")
        where = st.path if st.path is not None else f"expected at {weights.expected_path(st.spec, args.weights_dir)}"
        print(f"{state} {st.spec.describe():70s} {weights.format_bytes(size):>9s}  {where}")
        if st.path is not None:
            for name, reason in st.problems:
                print(f"          {name}: {reason}")
    print(f"total download for profile {args.profile}: {weights.format_bytes(total)}"
          f"{' + models of unknown size' if unknown else ''}")
    bad = [st for st in statuses if not st.ok]
    if bad:
        print(f"{len(bad)} of {len(statuses)} missing or incomplete; run `dpa-weights download --profile {args.profile}"
              f"{' --weights-dir ' + args.weights_dir if args.weights_dir else ''}`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

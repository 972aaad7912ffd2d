"""``dpa-weights``: check (offline) or download the model weights of a profile.

    dpa-weights check --profile paper [--weights-dir DIR] [--config FILE]
    dpa-weights download --profile paper [--weights-dir DIR] [--timeout 30]

``check`` exits 0 when every weight is on this machine, 1 otherwise, and never uses the network.
``download`` fetches what is missing from the Hugging Face hub (needs network) into ``DIR`` (as
``DIR/<org>--<name>/``) or, without ``--weights-dir``, into the Hugging Face cache.
"""
from __future__ import annotations

import argparse
import sys

from dpa_ros.priors import weights
from dpa_ros.priors.base import ReconstructionError
from dpa_ros.priors.profiles import load_profile


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dpa-weights", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("check", "download"))
    parser.add_argument("--profile", default="paper", help="profile name (paper, fast, smoke)")
    parser.add_argument("--config", default=None, help="a profile YAML file or a directory of them")
    parser.add_argument("--weights-dir", default=None, help="weights directory (default $DPA_WEIGHTS_DIR, else the HF cache)")
    parser.add_argument("--timeout", type=float, default=30.0, help="download: seconds per connection attempt")
    args = parser.parse_args(argv)
    try:
        profile = load_profile(args.profile, args.config)
    except ReconstructionError as exc:
        print(f"dpa-weights: {exc}", file=sys.stderr)
        return 2
    if args.command == "check":
        status = weights.check(profile, args.weights_dir)
        if not status:
            print(f"profile {args.profile}: no weights needed (models are built from configs)")
            return 0
        for spec, path in status:
            where = path if path is not None else f"MISSING, expected {weights.expected_path(spec, args.weights_dir)}"
            print(f"{'ok     ' if path else 'missing'} {spec.describe()}: {where}")
        missing = sum(p is None for _, p in status)
        if missing:
            print(f"{missing} of {len(status)} missing; run `dpa-weights download --profile {args.profile}"
                  f"{' --weights-dir ' + args.weights_dir if args.weights_dir else ''}`", file=sys.stderr)
            return 1
        return 0
    try:
        weights.download(profile, args.weights_dir, timeout_s=args.timeout)
    except Exception as exc:  # network, auth, disk: report in one line
        print(f"dpa-weights: download failed: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

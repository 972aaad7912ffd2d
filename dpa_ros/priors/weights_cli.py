"""``dpa-weights``: check (offline) or download the model weights of a profile.

    dpa-weights check --profile paper [--weights-dir DIR] [--config FILE]
    dpa-weights download --profile paper [--weights-dir DIR] [--timeout 30]

``check`` lists every model of the profile with the size it downloads (from
:mod:`dpa_ros.priors.hub_files`) and the total, and, per model, what is missing or damaged (a
truncated file is named as such). It exits 0 when every weight is here and whole, 1 otherwise, and
never uses the network.
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
        return _check(profile, args)
    try:
        weights.download(profile, args.weights_dir, timeout_s=args.timeout)
    except Exception as exc:  # network, auth, disk: report in one line
        print(f"dpa-weights: download failed: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
        return 1
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

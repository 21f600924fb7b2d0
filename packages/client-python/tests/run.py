"""Runs the Python suite (unittest) and writes its counts as JSON, for scripts/test.sh's closing line.

    /usr/bin/python3 packages/client-python/tests/run.py [--json FILE] [unittest names...]

Exit status 0 when every test passed.
"""

import argparse
import json
import os
import sys
import unittest
from unittest.suite import _ErrorHolder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write {passed, failed, skipped} here")
    parser.add_argument("names", nargs="*", help="tests to run (default: all under tests/)")
    args = parser.parse_args(argv)
    sys.path.insert(0, ROOT)
    os.chdir(ROOT)
    loader = unittest.TestLoader()
    suite = loader.loadTestsFromNames(args.names) if args.names else loader.discover("tests", top_level_dir=ROOT)
    result = unittest.TextTestRunner(stream=sys.stderr, verbosity=2).run(suite)
    # A module that fails to import or set up counts as one failure (as jest's runtime errors do); its tests do
    # not run, and are in neither count.
    not_run = [e for e in result.errors if isinstance(e[0], _ErrorHolder)]
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    passed = result.testsRun - (failed - len(not_run)) - skipped
    counts = {"passed": passed, "failed": failed, "skipped": skipped}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(counts, f)
    print("python: %(passed)d passed, %(failed)d failed, %(skipped)d skipped" % counts, file=sys.stderr)
    return 0 if failed == 0 and result.testsRun > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

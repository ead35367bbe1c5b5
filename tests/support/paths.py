"""Where the tests' data lives: fixtures in the repository, the corpus beside it."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
SAMPLES = ROOT / "config" / "samples"
# ../shared/corpus beside the project: real mail for the classifier and the volume test.
CORPUS = ROOT.parent / "shared" / "corpus"

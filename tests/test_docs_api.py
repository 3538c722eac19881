"""docs/api.md's Python blocks run as written."""

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def test_quickstart_runs_and_estimates_near_the_truth(capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert blocks, "docs/api.md has no python block"
    scope: dict = {}
    exec(compile(blocks[0], str(DOC), "exec"), scope)
    out = capsys.readouterr().out
    assert "mine" in out and "random" in out
    frame = scope["result"].to_frame()
    assert len(frame) == 4
    half = (frame.ci_high - frame.ci_low) / 2
    assert ((frame.estimate - frame.truth).abs() <= 1.5 * half).all()  # about 3 s.e.

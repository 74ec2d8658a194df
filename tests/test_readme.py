"""README's Python examples run as written (the scripting API they show exists and gives what they say)."""
import contextlib
import io
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_python_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(blocks) >= 2
    scope: dict = {}
    with contextlib.redirect_stdout(io.StringIO()) as out:
        for block in blocks:
            exec(compile(block, "README.md", "exec"), scope)
    assert scope["r"].value == -12.0 and scope["r"].grads == {"x": -4.0, "y": -4.0, "z": 3.0}
    assert "df/dw0 = df/dq1 · dq1/dw0 = 0.1966 × -1 = -0.1966" in out.getvalue()
    assert scope["net"].accuracy(*scope["data"][:2]) > 0.95

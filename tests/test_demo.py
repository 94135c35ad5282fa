from paretorch.cli import main
from paretorch.demos import run_toy_demo


def test_toy_demo_reaches_the_front():
    result = run_toy_demo()
    assert result.gd < 0.05
    assert result.igd <= 1.05 * result.igd_floor
    assert result.nondominated == 11
    assert result.hypervolume.value > 0.95 * result.reference_hypervolume


def test_cli_toy_prints_front(capsys):
    assert main(["toy", "--steps", "1000"]) == 0
    out = capsys.readouterr().out
    assert "hypervolume" in out and "IGD" in out and "PASS" in out

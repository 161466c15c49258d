"""The parts of scripts/xyz_grid.py that extensions use to add axes (host-api.md 2.7)."""

from modules import scripts


class AxisOption:
    def __init__(self, label, type, apply, format_value=None, confirm=None, cost=0.0, choices=None, prepare=None):
        self.label, self.type, self.apply, self.format_value = label, type, apply, format_value
        self.confirm, self.cost, self.choices, self.prepare = confirm, cost, choices, prepare


def apply_field(field):
    def fun(p, x, xs):
        setattr(p, field, x)
    return fun


def boolean_choice(reverse: bool = False):
    def choice():
        return ["False", "True"] if reverse else ["True", "False"]
    return choice


axis_options = [AxisOption("Nothing", str, lambda p, x, xs: None)]


class Script(scripts.Script):
    def title(self):
        return "X/Y/Z plot"

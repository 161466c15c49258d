import pytest

from lib_memstab import GuardConfig


def test_defaults_are_the_paper_setting():
    c = GuardConfig()
    assert (c.tau_mild, c.tau_strong, c.gamma, c.early_fraction) == (3.0, 14.0, 3.0, 0.2)


@pytest.mark.parametrize("field,value", [
    ("mode", "loud"), ("tau_mild", 0), ("tau_mild", -1), ("tau_mild", float("nan")), ("tau_mild", "3"),
    ("tau_strong", 2.0), ("gamma", 0.0), ("gamma", float("inf")), ("early_fraction", 1.5),
    ("early_fraction", -0.1), ("score_window", 0), ("score_window", "first"), ("score_window", True),
    ("tau_mild", True),
])
def test_bad_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        GuardConfig(**{field: value})


def test_from_dict_rejects_unknown_keys_and_round_trips():
    with pytest.raises(ValueError, match="unknown key.*tau_mlid"):
        GuardConfig.from_dict({"tau_mlid": 3})
    with pytest.raises(ValueError, match="needs a dict"):
        GuardConfig.from_dict([1, 2])
    c = GuardConfig(mode="mitigate", tau_mild=2.5, score_window=5)
    assert GuardConfig.from_dict(c.to_dict()) == c

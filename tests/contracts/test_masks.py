"""The masks file's contract: positions are integers."""

import pytest

from depthshrink import DepthshrinkError
from depthshrink.contracts.masks import MASKS_FORMAT, Masks


@pytest.mark.parametrize("field,value", [("kept_activations", [3, 12.9]), ("segments", [[0, 3], [3.5, 7]]),
                                         ("removed_activations", ["5"]), ("kept_activations", [True]),
                                         ("kept_activations", [float("inf")])])
def test_a_position_that_is_not_an_integer_is_refused(field, value):
    """12.9 was read as 12 and "5" as 5: a hand-edited masks file resolved against the space as if intended."""
    data = {"format": MASKS_FORMAT, "kept_activations": [3], "segments": [[0, 3], [3, 7]], field: value}
    with pytest.raises(DepthshrinkError, match="is not an integer"):
        Masks.from_dict(data)


def test_integral_numbers_are_positions():
    masks = Masks.from_dict({"format": MASKS_FORMAT, "kept_activations": [3.0], "segments": [[0, 3], [3, 7]],
                             "removed_activations": [5]})
    assert masks.kept_activations == [3] and masks.segments == [(0, 3), (3, 7)] and masks.removed_activations == [5]


def test_a_file_naming_removed_sites_accounts_for_every_site_and_names_none_twice():
    """A file's removed_activations are read as given, not taken as the complement of the kept."""
    from helpers import tiny_space

    _, space = tiny_space()
    sites = [s.position for s in space.sites if s.activation is not None and s.removable]
    assert len(sites) >= 2
    layers = [(p, p + 1) for p in range(space.num_layers)]
    with pytest.raises(DepthshrinkError, match="say nothing of sites"):
        Masks([], layers, [sites[0]], dict(space.model)).resolve(space)
    with pytest.raises(DepthshrinkError, match="both kept and removed"):
        Masks([sites[0]], layers, sites, dict(space.model)).resolve(space)

import numpy as np
import pytest

from pathgen.flat_fields import (
    apply_flat_field,
    blend_to_colours,
    clear_of_flat,
    exact_colour_tiles,
    fit_distance_map,
    flat_distances,
    frequent_colours,
    is_flat_field,
    nearest_colours,
    pixel_shares,
    shift_to_colours,
    snap_to_colours,
    tile_offsets,
)

GLASS = (237, 221, 236)


def tiles_near_glass():
    flat = np.full((28, 28, 3), GLASS, dtype=np.uint8)
    near = flat.copy()
    near[:, :14] = (238, 220, 236)  # within one grey level: still exact
    half_off = flat.copy()
    half_off[:15] = 100  # 15 of 28 rows elsewhere: under half its pixels at the colour
    noisy = np.clip(flat.astype(int) + np.random.default_rng(0).integers(-3, 4, flat.shape), 0, 255).astype(np.uint8)
    return flat, near, half_off, noisy


def test_exact_colour_tiles_are_those_mostly_at_one_of_the_frequent_colours():
    flat, near, half_off, noisy = tiles_near_glass()
    tiles = np.stack([flat, near, half_off, noisy])
    colours = frequent_colours(np.stack([flat, flat, half_off]), 2)
    assert colours.tolist() == [list(GLASS), [100, 100, 100]] and colours.dtype == np.uint8
    flags = exact_colour_tiles(tiles, colours[:1], tolerance=1, min_share=0.5)
    assert flags.tolist() == [True, True, False, False]
    assert exact_colour_tiles(tiles, colours[:1], tolerance=3, min_share=0.5)[3]
    assert not exact_colour_tiles(tiles, colours[:0], tolerance=1, min_share=0.5).any()


def test_frequent_colours_break_ties_by_the_lower_value():
    tile = np.zeros((1, 2, 2, 3), dtype=np.uint8)
    tile[0, 0, 0] = (9, 9, 9)
    tile[0, 0, 1] = (1, 2, 3)
    assert frequent_colours(tile, 2).tolist() == [[0, 0, 0], [1, 2, 3]]


def test_snapping_sets_near_pixels_to_the_nearest_colour_and_leaves_the_rest():
    flat, near, half_off, noisy = tiles_near_glass()
    colours = np.array([GLASS, (100, 100, 100)], dtype=np.uint8)
    tiles = np.stack([near, half_off, noisy])
    snapped = snap_to_colours(tiles, colours, tolerance=1)
    np.testing.assert_array_equal(snapped[0], flat)
    np.testing.assert_array_equal(snapped[1], half_off)  # already exact
    moved = np.abs(noisy.astype(int) - GLASS).max(axis=-1) <= 1
    assert 0 < moved.mean() < 1
    assert (snapped[2][moved] == GLASS).all() and (snapped[2][~moved] == noisy[~moved]).all()
    np.testing.assert_array_equal(snap_to_colours(tiles, colours, tolerance=0), tiles)
    assert (snap_to_colours(noisy[None], colours, tolerance=3) == GLASS).all()
    two = np.array([[[[103, 103, 103], [98, 98, 98]]]], dtype=np.uint8)
    near_two = np.array([(104, 104, 104), (100, 100, 100)], dtype=np.uint8)
    assert snap_to_colours(two, near_two, tolerance=4).tolist() == [[[[104, 104, 104], [100, 100, 100]]]]


def tiles_at_distances(distances: np.ndarray) -> np.ndarray:
    """Tiles of GLASS with each pixel's red channel raised by its entry of `distances` (int [n, 28, 28])."""
    tiles = np.broadcast_to(np.array(GLASS, dtype=np.uint8), (len(distances), 28, 28, 3)).copy()
    tiles[..., 0] = GLASS[0] + distances
    return tiles


def test_a_distance_map_moves_pixels_part_way_and_its_extremes_are_snapping_and_nothing():
    rng = np.random.default_rng(1)
    tiles = np.clip(np.array(GLASS) + rng.integers(-6, 7, (3, 28, 28, 3)), 0, 255).astype(np.uint8)
    colours = np.array([GLASS], dtype=np.uint8)
    np.testing.assert_array_equal(snap_to_colours(tiles, colours, 4, [0.0] * 5), snap_to_colours(tiles, colours, 4))
    np.testing.assert_array_equal(snap_to_colours(tiles, colours, 4, [0.0, 1.0, 2.0, 3.0, 4.0]), tiles)
    halved = snap_to_colours(tiles, colours, 6, [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
    before, after = nearest_colours(tiles, colours)[1], nearest_colours(halved, colours)[1]
    assert (after <= np.ceil(before / 2)).all() and (after[before >= 2] < before[before >= 2]).all()


def test_the_fitted_distance_map_matches_the_real_distances():
    rng = np.random.default_rng(2)
    colours = np.array([GLASS], dtype=np.uint8)
    def distances(tiles):
        return nearest_colours(tiles, colours)[1]

    spread = tiles_at_distances(rng.integers(0, 9, (40, 28, 28)))
    assert fit_distance_map(distances(spread), distances(spread), 8) == pytest.approx(list(range(9)), abs=0.5)
    exact = tiles_at_distances(np.zeros((40, 28, 28), dtype=int))
    to_exact = fit_distance_map(distances(exact), distances(spread), 8)
    assert max(to_exact) < 0.5  # every pixel lands on the colour
    assert (nearest_colours(snap_to_colours(spread, colours, 8, to_exact), colours)[1] == 0).all()
    half = fit_distance_map(distances(tiles_at_distances(rng.integers(0, 5, (40, 28, 28)))), distances(spread), 8)
    assert half == sorted(half) and 3 <= half[-1] <= 5 and half[4] == pytest.approx(2, abs=0.6)


def test_blending_draws_near_neighbourhoods_onto_the_colour_and_leaves_far_ones():
    colours = np.array([GLASS], dtype=np.uint8)
    near = tiles_at_distances(np.full((1, 28, 28), 2))
    far = tiles_at_distances(np.full((1, 28, 28), 9))
    np.testing.assert_array_equal(blend_to_colours(near, colours, start=3, tolerance=7, window=3)[..., 0], GLASS[0])
    np.testing.assert_array_equal(blend_to_colours(far, colours, start=3, tolerance=7, window=3), far)
    halfway = blend_to_colours(tiles_at_distances(np.full((1, 28, 28), 6)), colours, start=4, tolerance=8, window=3)
    assert (halfway[..., 0] == GLASS[0] + 3).all()  # mean distance 6 keeps half of it


def test_blending_decides_by_the_neighbourhood_not_the_pixel():
    colours = np.array([GLASS], dtype=np.uint8)
    distances = np.full((1, 28, 28), 9)
    distances[0, 10, 10] = 1  # one near pixel among far ones: snapping moves it, blending does not
    lone = tiles_at_distances(distances)
    assert snap_to_colours(lone, colours, tolerance=7)[0, 10, 10, 0] == GLASS[0]
    np.testing.assert_array_equal(blend_to_colours(lone, colours, start=3, tolerance=7, window=3), lone)
    distances = np.full((1, 28, 28), 1)
    distances[0, 10, 10] = 9  # and one far pixel among near ones joins them, part way
    odd_one = blend_to_colours(tiles_at_distances(distances), colours, start=1, tolerance=5, window=3)
    assert odd_one[0, 10, 10, 0] == GLASS[0] + 2  # its window's mean, 17/9, keeps (17/9 - 1) / 4 of its 9
    assert (odd_one[0, 9, 9] == GLASS).all() and (odd_one[0, 0, 0] == GLASS).all()


def test_a_flat_field_spec_chooses_its_step():
    rng = np.random.default_rng(3)
    tiles = np.clip(np.array(GLASS) + rng.integers(-6, 7, (2, 28, 28, 3)), 0, 255).astype(np.uint8)
    colours = np.array([GLASS], dtype=np.uint8)
    spec = {"colours": [list(GLASS)], "tolerance": 5}
    np.testing.assert_array_equal(apply_flat_field(tiles, spec), snap_to_colours(tiles, colours, 5))
    mapped = spec | {"distance_map": [0, 0, 1, 2, 3, 4]}
    np.testing.assert_array_equal(apply_flat_field(tiles, mapped), snap_to_colours(tiles, colours, 5, [0, 0, 1, 2, 3, 4]))
    blended = spec | {"blend": {"start": 2, "window": 5}}
    np.testing.assert_array_equal(apply_flat_field(tiles, blended), blend_to_colours(tiles, colours, 2, 5, 5))
    shifted = spec | {"shift": {"min_share": 0.2, "offset_map": [0, 0, 0, 1, 2, 3]}}
    np.testing.assert_array_equal(apply_flat_field(tiles + 2, shifted),
                                  shift_to_colours(tiles + 2, colours, 5, 0.2, [0, 0, 0, 1, 2, 3]))
    assert not np.array_equal(apply_flat_field(tiles + 2, shifted), tiles + 2)


def glass_with_grain_and_tissue(offset: tuple[int, int, int], glass_rows: int, seed: int = 5) -> np.ndarray:
    """One tile: its first `glass_rows` rows glass at GLASS + offset with a grain of ±1, the rest dark tissue."""
    rng = np.random.default_rng(seed)
    tile = np.full((28, 28, 3), 90, dtype=np.int64) + rng.integers(-20, 21, (28, 28, 3))
    tile[:glass_rows] = np.array(GLASS) + np.array(offset) + rng.integers(-1, 2, (glass_rows, 28, 3))
    return tile.astype(np.uint8)


def test_a_tile_whose_glass_is_off_the_colour_moves_as_a_whole():
    off = glass_with_grain_and_tissue((-4, 2, -2), glass_rows=20)
    little = glass_with_grain_and_tissue((-4, 2, -2), glass_rows=10)  # glass under half the tile: no field
    tiles = np.stack([off, little])
    colours = np.array([GLASS, (10, 10, 10)], dtype=np.uint8)
    has_field, field_colour, offsets = tile_offsets(tiles, colours, 6, 0.5)
    assert has_field.tolist() == [True, False] and field_colour[0] == 0
    np.testing.assert_allclose(offsets[0], [-4, 2, -2])
    np.testing.assert_array_equal(offsets[1], 0)
    onto = shift_to_colours(tiles, colours, 6, 0.5, [0.0] * 7)
    # The whole tile moves by the one offset: grain and tissue keep their differences, the glass lands on the colour.
    np.testing.assert_array_equal(onto[0].astype(int) - off, np.broadcast_to([4, -2, 2], off.shape))
    np.testing.assert_allclose(np.median(onto[0][:20].reshape(-1, 3), axis=0), GLASS)
    np.testing.assert_array_equal(onto[1], little)
    identity = shift_to_colours(tiles, colours, 6, 0.5, [0, 1, 2, 3, 4, 5, 6])
    np.testing.assert_array_equal(identity, tiles)
    halfway = shift_to_colours(tiles, colours, 6, 0.5, [0, 1, 2, 2, 2, 5, 6])  # size 4 -> 2: half the offset left
    np.testing.assert_array_equal(halfway[0].astype(int) - off, np.broadcast_to([2, -1, 1], off.shape))


def test_a_shift_is_clipped_at_the_ends_of_the_range():
    white = np.full((1, 28, 28, 3), 255, dtype=np.uint8)
    white[0, 0, 0] = 250
    moved = shift_to_colours(white, np.array([(251, 251, 251)], dtype=np.uint8), 4, 0.5, [0.0] * 5)
    assert moved.dtype == np.uint8 and moved[0, 0, 0].tolist() == [246] * 3 and moved[0, 5, 5].tolist() == [251] * 3
    assert shift_to_colours(white[:0], np.array([GLASS], dtype=np.uint8), 4, 0.5, [0.0] * 5).shape == (0, 28, 28, 3)


def test_a_clearance_keeps_shifted_glass_off_a_flat_tile_of_its_colour_and_leaves_the_rest_alone():
    colours = np.array([GLASS], dtype=np.uint8)
    rng = np.random.default_rng(1)
    fine = np.clip(np.array(GLASS) + (2, 1, 1) + rng.integers(0, 2, (28, 28, 3)), 0, 255).astype(np.uint8)
    coarse = np.clip(np.array(GLASS) + (2, 1, 1) + rng.integers(-6, 7, (28, 28, 3)), 0, 255).astype(np.uint8)
    tiles = np.stack([fine, coarse])
    onto = shift_to_colours(tiles, colours, 8, 0.5, [0.0] * 9)
    assert flat_distances(onto[0][None], colours)[0] < 0.2 < flat_distances(onto[1][None], colours)[0]
    cleared = shift_to_colours(tiles, colours, 8, 0.5, [0.0] * 9, clearance=0.2)
    # The fine-grained tile is moved back out along its own offset, as a whole; the coarse one as the shift moves it.
    assert flat_distances(cleared[0][None], colours)[0] >= 0.2
    moved = cleared[0].astype(int) - fine
    assert (moved == moved[0, 0]).all() and (moved[0, 0] <= 0).all()
    np.testing.assert_array_equal(cleared[1], onto[1])
    np.testing.assert_array_equal(shift_to_colours(tiles, colours, 8, 0.5, [0.0] * 9, clearance=0.0), onto)


def test_a_tile_exactly_on_its_colour_is_cleared_upward_and_never_past_the_tolerance():
    colour = np.array(GLASS, dtype=np.uint8)
    flat = np.full((28, 28, 3), GLASS, dtype=np.uint8)
    cleared = clear_of_flat(flat, colour, np.zeros(3), 0.0, 0.5, 8)
    assert flat_distances(cleared[None], colour[None])[0] >= 0.5 and (cleared.astype(int) > flat).all()
    capped = clear_of_flat(flat, colour, np.zeros(3), 0.0, 40.0, 8)  # unreachable: stops at the tolerance
    np.testing.assert_array_equal(capped.astype(int) - flat, 8)


@pytest.mark.parametrize("spec,valid", [
    ({"colours": [list(GLASS)], "tolerance": 3}, True),
    ({"colours": [list(GLASS), (0, 0, 0)], "tolerance": 0}, True),
    ({"colours": [], "tolerance": 3}, False),
    ({"colours": [[256, 0, 0]], "tolerance": 3}, False),
    ({"colours": [[1.5, 0, 0]], "tolerance": 3}, False),
    ({"colours": [[1, 0]], "tolerance": 3}, False),
    ({"colours": [list(GLASS)], "tolerance": 17}, False),
    ({"colours": [list(GLASS)], "tolerance": True}, False),
    ({"colours": [list(GLASS)]}, False),
    ({"colours": [list(GLASS)] * 17, "tolerance": 1}, False),
    ([list(GLASS)], False),
    ({"colours": [list(GLASS)], "tolerance": 2, "distance_map": [0, 0.5, 1.5]}, True),
    ({"colours": [list(GLASS)], "tolerance": 2, "distance_map": [0, 0.5]}, False),
    ({"colours": [list(GLASS)], "tolerance": 2, "distance_map": [0, 1.5, 0.5]}, False),
    ({"colours": [list(GLASS)], "tolerance": 2, "distance_map": [0, 1, 3]}, False),
    ({"colours": [list(GLASS)], "tolerance": 2, "distance_map": "0 1 2"}, False),
    ({"colours": [list(GLASS)], "tolerance": 2, "other": 1}, False),
    ({"colours": [list(GLASS)], "tolerance": 7, "blend": {"start": 4, "window": 3}}, True),
    ({"colours": [list(GLASS)], "tolerance": 7, "blend": {"start": 0.5, "window": 9}}, True),
    ({"colours": [list(GLASS)], "tolerance": 7, "blend": {"start": 7, "window": 3}}, False),
    ({"colours": [list(GLASS)], "tolerance": 7, "blend": {"start": -1, "window": 3}}, False),
    ({"colours": [list(GLASS)], "tolerance": 7, "blend": {"start": 4, "window": 4}}, False),
    ({"colours": [list(GLASS)], "tolerance": 7, "blend": {"start": 4, "window": 11}}, False),
    ({"colours": [list(GLASS)], "tolerance": 7, "blend": {"start": 4}}, False),
    ({"colours": [list(GLASS)], "tolerance": 0, "blend": {"start": 0, "window": 3}}, False),
    ({"colours": [list(GLASS)], "tolerance": 2, "distance_map": [0, 1, 2], "blend": {"start": 1, "window": 3}}, False),
    ({"colours": [list(GLASS)], "tolerance": 2, "shift": {"min_share": 0.5, "offset_map": [0, 0.5, 1]}}, True),
    ({"colours": [list(GLASS)], "tolerance": 2, "shift": {"min_share": 1, "offset_map": [0, 0, 0]}}, True),
    ({"colours": [list(GLASS)], "tolerance": 2, "shift": {"min_share": 0, "offset_map": [0, 0, 0]}}, False),
    ({"colours": [list(GLASS)], "tolerance": 2, "shift": {"min_share": 1.5, "offset_map": [0, 0, 0]}}, False),
    ({"colours": [list(GLASS)], "tolerance": 2, "shift": {"min_share": 0.5, "offset_map": [0, 2, 1]}}, False),
    ({"colours": [list(GLASS)], "tolerance": 2, "shift": {"min_share": 0.5, "offset_map": [0, 1]}}, False),
    ({"colours": [list(GLASS)], "tolerance": 2, "shift": {"offset_map": [0, 1, 2]}}, False),
    ({"colours": [list(GLASS)], "tolerance": 2, "shift": {"min_share": 0.5, "offset_map": [0, 1, 2], "clearance": 0.12}},
     True),
    ({"colours": [list(GLASS)], "tolerance": 2, "shift": {"min_share": 0.5, "offset_map": [0, 1, 2], "clearance": -1}},
     False),
    ({"colours": [list(GLASS)], "tolerance": 2, "shift": {"min_share": 0.5, "offset_map": [0, 1, 2], "clearance": 49}},
     False),
    ({"colours": [list(GLASS)], "tolerance": 2, "shift": {"min_share": 0.5, "offset_map": [0, 1, 2], "other": 1}},
     False),
    ({"colours": [list(GLASS)], "tolerance": 2, "shift": {"min_share": 0.5, "offset_map": [0, 1, 2]},
      "distance_map": [0, 1, 2]}, False),
])
def test_flat_field_settings_are_checked(spec, valid):
    assert is_flat_field(spec) is valid


def test_pixel_shares_count_exact_matches_only():
    tile = np.zeros((1, 28, 28, 3), dtype=np.uint8)
    tile[0, :7] = (237, 221, 236)
    tile[0, 7:14] = (237, 221, 235)
    shares = pixel_shares(tile, np.array([[237, 221, 236], [0, 0, 0], [1, 1, 1]]))
    assert shares.tolist() == [0.25, 0.5, 0.0]

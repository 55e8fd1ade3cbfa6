"""Which of a pair's residual flow (flow minus what the camera model explains) is evidence of moving objects.

Three things in real video make a plain homography residual read objects that are not there (issue 22):
- pixels whose flow leaves the frame, or that sit on its edge, have no true match in the second frame;
- flow error grows with sensor noise, compression and speed, so a fixed speed threshold turns noise into
  objects: each pair's threshold sits ``noise_factor`` times above its noise floor, the median residual
  of its reliable pixels (mostly background, whose true residual is zero);
- a moving camera gives nearer still scenery parallax, which no homography explains. After the fitted plane's
  homography, a still point's residual lies on the line joining it to the epipole (plane + parallax), on the
  same side for everything nearer than the plane (the plane is the largest surface, usually the farthest).
  The epipole is fitted per pair by RANSAC to the lines of the clearly residual pixels (at infinity for a
  camera translating sideways; anywhere for a handheld one, whose rotation turns its flow away from the
  epipolar lines). When residual of that shape covers a large part of the frame and is spread across it
  (a moving object is compact; parallax is wherever there is nearer scenery), and the frames bear enough of it out
  (compression's skipped blocks lag a slow pan along its own way, as a translating camera's parallax runs, but moved
  by the flow they match the next frame barely better than moved by the camera), it is taken for parallax:
  only residual across the epipolar lines, beyond what lens distortion and flow error spill there, is object
  evidence. Along the lines, nearer scenery moves with the camera's flow and farther scenery (when the plane
  fitted is a middle layer) against it, but nothing still lies beyond the farthest surface: its level, the
  lower envelope of the parallax per unit distance to the epipole, bounds what is discounted the far way, and
  residual beyond it is object evidence (an object heading the way the camera moves). Motion the near way
  along a line stays ambiguous: in two frames and at constant velocity it is still scenery at another depth.
  There the median residual is mostly parallax, so the noise floor comes from the residual across the
  lines instead, which is flow error alone.
Then every candidate region must be confirmed by the pixels themselves: the second frame, moved by the
flow, must match the first clearly better than moved by the camera (with parallax: as a still scene would
move, the camera's flow plus the parallax along the lines). A blob of flow error on still background fails
that whatever its speed; a moving object passes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from motionpipe.stages.flow_checks import pixel_grid, squared_length

EDGE_PX = 2  # measuring px along the frame's edge where flow has too little context to trust
PARALLAX_SLOPE = 0.5  # a parallax-like residual's across-epipolar-line part is at most this share of its along part
# Parallax's share of its length that lands across the epipolar lines (lens distortion, rolling shutter, flow error).
# It also blinds the rule to objects within atan(spill) of the lines. 0.2 against 0.3, benchmarks/decouple.py: object
# pair accuracy under parallax 0.58 -> 0.65 and 0.57 -> 0.64 on held-out seeds 2 and 3 (0.88 -> 0.84 on the tuning
# seed: one slow object, marginal in both), no still scene reading more; handheld still people (shared/data, 0.4-0.5
# across their lines) 5.4 -> 5.8 %diag/s against a 10.6 camera.
PARALLAX_SPILL = 0.2
MIN_PARALLAX_RATIO = 0.15  # parallax of at least this share of the camera's displacement (depth <= 0.87 x the plane's)
EPIPOLE_POINTS = 600  # residual lines sampled per pair to fit the epipole
# The best guess is refitted to the lines within this slope of it (11 degrees): residuals of moving objects
# inside the looser PARALLAX_SLOPE band pulled the refit off the handheld frames' epipole (shared/data).
EPIPOLE_REFIT_SLOPE = 0.2
EPIPOLE_HYPOTHESES = 128  # line pairs tried: with half the lines through the epipole, all miss it with p < 1e-15
# The farthest surface's level, per cell: the share of the cell's parallax (per unit distance to the epipole, the far
# way) below it. DIS smooths the background's flow between nearer layers, so the farthest surface reads a spread;
# its lowest part still sits on it.
FARTHEST_QUANTILE = 0.1
# The share of the cells whose level is lower than the farthest surface's: an object filling fewer than a quarter of
# the cells (up to about a sixth of the frame) does not move the level; the farthest surface shows in most.
# benchmarks/decouple.py, seeds 0-3: a level over the whole frame (0.05, 0.1 and 0.25 of its pixels) put still
# background under it (still parallax scenes read 6.9-12 %diag/s) or lost objects covering more than that share of the
# frame (a tracking shot's subject).
FARTHEST_CELLS = 0.25
SPREAD_GRID = 4  # the frame is cut into SPREAD_GRID x SPREAD_GRID cells to tell spread-out parallax from objects
SPREAD_CELL_SHARE = 0.05  # a cell shows parallax when this share of its pixels does
# Share of cells showing parallax, above which it is parallax (medians over pairs). Moving objects under pans and
# zooms filled at most 0.56 of the cells (benchmarks/decouple.py, both seeds, every base condition); parallax scenes
# 0.41-1.0, all but 3 of 32 clean ones above 0.6; handheld real frames (shared/data) 0.69-0.75.
MIN_PARALLAX_SPREAD = 0.6
# Parallax must be motion the frames bear out: compressed video's skipped blocks lag the camera along its own way and
# look like parallax (a pan is a translating camera's epipole), but moving them by the flow matches the second frame
# barely better than moving them by the camera. Of the parallax-like pixels, those matched this many times better by
# the flow must still cover BORNE_PARALLAX_SHARE of the reliable pixels over BORNE_PARALLAX_SPREAD of the cells.
# benchmarks/decouple.py, seeds 0-9: 19 clips without layers (crf 42) were declared, 14 of them no longer; 2 of 492
# layered clips lose it (both wide sets' fast pans, one a still scene read 8.4, one an object read 0). Layers in flat
# texture bear out little of their parallax, so the share and spread asked are lower than the declaration's own.
BORNE_PARALLAX_RATIO = 1.5
BORNE_PARALLAX_SHARE = 0.1
BORNE_PARALLAX_SPREAD = 0.5
# Median residual length over median across-line part, for isotropic Gaussian flow error (1.177 / 0.674 sigma):
# where parallax fills the along part, the across part is flow error alone and gives the noise floor back.
ACROSS_TO_LENGTH = 1.75
PHOTOMETRIC_WINDOW_PX = 5  # measuring px over which match errors are averaged
# The measuring short side at which DecoupleConfig.confirm_ratio was measured (256 px processing frames).
CONFIRM_REFERENCE_PX = 128
# The side of the window residual is averaged over before it is evidence, as a share of the measuring short side
# (9 px at 128): chosen between 5 and 9 px on benchmarks/decouple.py's seeds 0-3, 9 then confirmed on seeds 4-9.
COHERENCE_SHARE = 9 / 128

Box = tuple[slice, slice]  # rows, columns of a frame
WHOLE_FRAME: Box = (slice(None), slice(None))


def within_frame(points: np.ndarray, height: int, width: int, edge_px: int = EDGE_PX) -> np.ndarray:
    """``bool[...]``: the (x, y) ``points`` lie at least ``edge_px`` inside a ``height`` x ``width`` frame."""
    x, y = points[..., 0], points[..., 1]
    return (x >= edge_px) & (x <= width - 1 - edge_px) & (y >= edge_px) & (y <= height - 1 - edge_px)


def lands_inside(forward: np.ndarray, edge_px: int = EDGE_PX) -> np.ndarray:
    """``bool[..., H, W]``: the pixel is ``edge_px`` from the frame's edge and its flow lands as far inside."""
    height, width = forward.shape[-3:-1]
    inside = within_frame(pixel_grid(height, width) + forward, height, width, edge_px)
    inside[..., :edge_px, :] = inside[..., -edge_px:, :] = False
    inside[..., :edge_px] = inside[..., -edge_px:] = False
    return inside


def coherent_lengths(residual: np.ndarray, reliable: np.ndarray) -> np.ndarray:
    """``float32[P, h, w]``: the length of the ``residual[P, h, w, 2]`` averaged over the ``reliable`` pixels of a
    window around each pixel (``COHERENCE_SHARE`` of the short side; px, 0 where the window has none). Compression
    and sensor noise turn the residual every way from pixel to pixel and block to block, a moving object's all one
    way over its area: averaged, an object's keeps its length and noise's shrinks, so a slow object stands further
    above the noise floor and blobs of noise fall under it."""
    short_side = min(residual.shape[1:3])
    side = int(COHERENCE_SHARE * short_side) // 2 * 2 + 1
    lengths = []
    for pair_residual, pair_reliable in zip(residual, reliable, strict=True):
        weights = pair_reliable.astype(np.float32)
        sums = cv2.blur(pair_residual * weights[..., None], (side, side))
        counts = cv2.blur(weights, (side, side))
        lengths.append(np.sqrt(squared_length(sums)) / np.maximum(counts, 1e-6))
    return np.stack(lengths)


def reliable_medians(speeds: np.ndarray, reliable: np.ndarray) -> np.ndarray:
    """``float[P]``: per pair, the median of ``speeds[P, h, w]`` over its reliable pixels (0 with none): the noise
    floor, as most reliable pixels are background whose true residual is zero."""
    return np.array(
        [float(np.median(speed[mask])) if mask.any() else 0.0 for speed, mask in zip(speeds, reliable, strict=True)]
    )


def parallax_field(
    residual: np.ndarray, camera: np.ndarray, significant: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """``float32[h, w, 2]``: per pixel of a pair, a vector along the line through the epipole, pointing the way most
    ``significant`` residuals point; zeros with fewer than two of them. Its length grows with the distance to the
    epipole (the same everywhere for an epipole at infinity), as a still point's parallax does at a given depth.
    RANSAC over the epipoles where two residual lines cross, the points taken where the camera moves them to; the
    best is refitted by least squares to the lines close to it."""
    height, width = residual.shape[:2]
    half = max(height, width) / 2  # points centred and scaled to [-1, 1]: the line fit is well conditioned
    warped = (pixel_grid(height, width) + camera - [(width - 1) / 2, (height - 1) / 2]) / half
    ys, xs = np.nonzero(significant)
    if len(xs) < 2:
        return np.zeros_like(residual)
    pick = rng.choice(len(xs), min(len(xs), EPIPOLE_POINTS), replace=False)
    points, vectors = warped[ys[pick], xs[pick]], residual[ys[pick], xs[pick]]
    ones = np.ones((len(points), 1), np.float32)
    lines = np.cross(np.hstack([points, ones]), np.hstack([points + vectors / half, ones]))
    tried = rng.integers(len(points), size=(EPIPOLE_HYPOTHESES, 2))
    epipoles = np.cross(lines[tried[:, 0]], lines[tried[:, 1]])  # homogeneous: w = 0 at infinity
    along, across = hypothesis_parts(vectors, points, epipoles)
    fits = across < PARALLAX_SLOPE * np.abs(along)
    best = int(np.argmax(np.maximum((fits & (along > 0)).sum(axis=1), (fits & (along < 0)).sum(axis=1))))
    close = across[best] < EPIPOLE_REFIT_SLOPE * np.abs(along[best])
    epipole = epipoles[best]
    if close.sum() >= 2:
        epipole = refined_epipole(lines[close], np.sqrt(squared_length(vectors[close])))
    epipole = epipole / max(float(np.linalg.norm(epipole)), 1e-12)  # one scale for every pair's field
    along = along_and_across(vectors, unit(epipole[:2] - epipole[2] * points))[0]
    sign = 1.0 if (along > 0).sum() >= (along < 0).sum() else -1.0
    return (sign * (epipole[:2] - epipole[2] * warped)).astype(np.float32)


def hypothesis_parts(vectors: np.ndarray, points: np.ndarray, epipoles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``along_and_across`` of each residual ``vectors[N, 2]`` at ``points[N, 2]`` on the line towards each of
    ``epipoles[E, 3]`` -> ``float[E, N]`` each, scaled by the distance to the epipole (the tests compare the two
    parts, which scale alike). The direction ``e_xy - e_w p`` is linear in the epipole, so both parts are matrix
    products, far cheaper than forming the E x N directions (explain_parallax 1.4 -> 0.8 s on 60 clips)."""
    px, py, vx, vy = points[:, 0], points[:, 1], vectors[:, 0], vectors[:, 1]
    along = epipoles @ np.stack([vx, vy, -(vx * px + vy * py)])
    across = np.abs(epipoles @ np.stack([-vy, vx, -(vx * py - vy * px)]))
    return along, across


def refined_epipole(lines: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The homogeneous point nearest, in least squares, to ``lines[N, 3]``, each weighted by its residual's length (a
    longer residual's direction is surer): all the lines that agree refine a guess that two of them made."""
    normals = lines / np.maximum(np.hypot(lines[:, 0], lines[:, 1]), 1e-12)[:, None]
    return np.linalg.svd(normals * lengths[:, None], full_matrices=False)[2][-1]


def unit(vectors: np.ndarray) -> np.ndarray:
    """``vectors[..., 2]`` scaled to length 1 (zero vectors stay zero)."""
    length = np.sqrt(squared_length(vectors))
    return vectors / np.maximum(length, 1e-9)[..., None]


def along_and_across(residual: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The residual's signed component along unit ``directions`` and its unsigned one across them (px)."""
    along = residual[..., 0] * directions[..., 0] + residual[..., 1] * directions[..., 1]
    across = np.abs(residual[..., 0] * directions[..., 1] - residual[..., 1] * directions[..., 0])
    return along, across


def parallax_like(along: np.ndarray, across: np.ndarray, significant: np.ndarray) -> np.ndarray:
    """``bool[P, h, w]``: ``significant`` residual that runs along the epipolar line, the way nearer scenery moves."""
    return significant & (across < PARALLAX_SLOPE * along)


def parallax_share(like: np.ndarray, reliable: np.ndarray) -> float:
    """Median over pairs of the share of reliable pixels that look like parallax."""
    shares = [pixels[mask].mean() if mask.any() else 0.0 for pixels, mask in zip(like, reliable, strict=True)]
    return float(np.median(shares))


def parallax_spread(like: np.ndarray) -> float:
    """Median over pairs of the share of the frame's cells (``SPREAD_GRID`` a side) where parallax-like pixels are
    ``SPREAD_CELL_SHARE`` or more: a moving object or two fill a few cells, parallax most of them."""
    rows, columns = (np.array_split(np.arange(size), SPREAD_GRID) for size in like.shape[1:])
    by_rows = np.add.reduceat(like, [band[0] for band in rows], axis=1, dtype=np.int64)
    counts = np.add.reduceat(by_rows, [band[0] for band in columns], axis=2)  # [P, grid, grid]
    shown = counts / np.outer([len(band) for band in rows], [len(band) for band in columns]) >= SPREAD_CELL_SHARE
    return float(np.median(shown.mean(axis=(1, 2))))


def shows_parallax(
    like: np.ndarray, reliable: np.ndarray, min_share: float, min_spread: float = MIN_PARALLAX_SPREAD
) -> bool:
    """Whether pixels ``like[P, h, w]`` cover more than ``min_share`` of the reliable ones and at least ``min_spread``
    of the frame's cells (medians over pairs). Both only fall when pixels are taken out, so a superset that fails
    tells early."""
    return parallax_share(like, reliable) > min_share and parallax_spread(like) >= min_spread


def matched_unlike_camera(frames: tuple[np.ndarray, np.ndarray], camera: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """``bool[h, w]``: the pixels of a pair (grey frames) where the second frame moved by the ``forward`` flow matches
    the first ``BORNE_PARALLAX_RATIO`` times better than moved by the ``camera`` flow: motion unlike the camera's that
    the frames bear out (parallax or objects), not flow error."""
    camera_error, flow_error = photometric_errors(*frames, camera, forward)
    return camera_error > BORNE_PARALLAX_RATIO * flow_error


def object_evidence(along: np.ndarray, across: np.ndarray) -> np.ndarray:
    """Residual length without its parallax-like part (px): across the epipolar line, beyond what parallax spills
    there."""
    return np.maximum(across - PARALLAX_SPILL * np.abs(along), 0.0)


def nearer_way(directions: np.ndarray, camera: np.ndarray) -> np.ndarray:
    """``float32[P]``: per pair, +1 where the ``directions[P, h, w, 2]`` point the way the ``camera`` flow goes on the
    whole (the way scenery nearer than the fitted plane moves, faster than the plane), else -1."""
    return np.where((directions * camera).sum(axis=(1, 2, 3)) >= 0, 1.0, -1.0).astype(np.float32)


def farthest_level(per_unit: np.ndarray, reliable: np.ndarray) -> float:
    """How far the farthest surface moves the far way, per unit distance to the epipole (<= 0: the fitted plane may be
    that surface): per cell of the ``SPREAD_GRID`` grid with ``SPREAD_CELL_SHARE`` reliable, the
    ``FARTHEST_QUANTILE`` of its pixels' ``per_unit[h, w]``; then the ``FARTHEST_CELLS`` quantile of the cells. The
    farthest surface shows in many cells; an object, even a tracking shot's subject, in few."""
    rows, columns = (np.array_split(np.arange(size), SPREAD_GRID) for size in per_unit.shape)
    cells = []
    for band in rows:
        for span in columns:
            cell = (slice(band[0], band[-1] + 1), slice(span[0], span[-1] + 1))
            if reliable[cell].mean() >= SPREAD_CELL_SHARE:
                cells.append(np.quantile(per_unit[cell][reliable[cell]], FARTHEST_QUANTILE))
    return min(float(np.quantile(cells, FARTHEST_CELLS)), 0.0) if cells else 0.0


@dataclass(frozen=True)
class ParallaxExplanation:
    """What a still scene seen by a translating camera explains of a clip's residual flow (``P`` pairs)."""

    evidence_px: np.ndarray  # float[P, h, w]: residual length that parallax does not explain
    noise_px: np.ndarray  # float[P]: the noise floor, from the residual across the epipolar lines
    # float[P, h, w, 2]: the camera's flow plus the parallax along the lines (the far way, down to the farthest surface)
    still_flow: np.ndarray
    # float[P, h, w, 2]: the farthest surface's flow, against which objects move (the fitted plane may be nearer)
    farthest_flow: np.ndarray


def explain_parallax(
    residual: np.ndarray,
    camera: np.ndarray,
    reliable: np.ndarray,
    noise_px: np.ndarray,
    min_share: float,
    borne_out: np.ndarray | None = None,
) -> ParallaxExplanation | None:
    """How parallax explains the clip's pairs (``residual``, ``camera`` flows ``[P, h, w, 2]``) when they show it
    over more than ``min_share`` of their reliable pixels, spread over the frame, and (given ``borne_out[P, h, w]``,
    ``matched_unlike_camera``'s pixels) the frames bear enough of it out; None when they do not (then all
    residual is object evidence). Residual counts when it beats twice the pair's noise (``noise_px[P]`` at first,
    then the floor that the residual across the epipolar lines gives) and ``MIN_PARALLAX_RATIO`` of the camera's
    displacement. Residual along the lines, the far way, beyond the farthest surface's level is object evidence too."""
    length = np.sqrt(squared_length(residual))
    big_enough = reliable & (length > MIN_PARALLAX_RATIO * np.sqrt(squared_length(camera)))
    if not shows_parallax(big_enough, reliable, min_share):  # parallax-like pixels are among these: skip the fits
        return None
    for _ in range(2):  # fitted with the floor given, then again with the floor across the first fit's lines
        significant = big_enough & (length > 2 * noise_px[:, None, None])
        rng = np.random.default_rng(0)  # the same clip gives the same epipoles
        fields = np.stack([parallax_field(*pair, rng) for pair in zip(residual, camera, significant, strict=True)])
        directions = unit(fields)
        along, across = along_and_across(residual, directions)
        noise_px = np.minimum(noise_px, ACROSS_TO_LENGTH * reliable_medians(across, reliable))
    like = parallax_like(along, across, significant)
    if not shows_parallax(like, reliable, min_share):
        return None
    if borne_out is not None and not shows_parallax(
        like & borne_out, reliable, BORNE_PARALLAX_SHARE, BORNE_PARALLAX_SPREAD
    ):
        return None
    distance = np.sqrt(squared_length(fields))
    nearer = nearer_way(directions, camera)[:, None, None]
    nearer_along = nearer * along  # > 0: nearer than the fitted plane
    per_unit = nearer_along / np.maximum(distance, 1e-9)
    levels = np.array([farthest_level(*pair) for pair in zip(per_unit, reliable, strict=True)], np.float32)
    farthest = levels[:, None, None] * distance
    # beyond it by what counts as parallax at all: DIS's error along the lines is larger than across them, most at the
    # frame's edges (there, still layered scenes made apart from the benchmark read 5.7 and 16.5 %diag/s without it)
    margin = MIN_PARALLAX_RATIO * np.sqrt(squared_length(camera))
    beyond = np.maximum(farthest - nearer_along - margin, 0.0)
    evidence = np.hypot(object_evidence(along, across), beyond)
    still_along = nearer * np.maximum(nearer_along, farthest)
    return ParallaxExplanation(
        evidence,
        noise_px,
        camera + still_along[..., None] * directions,
        camera + (nearer * farthest)[..., None] * directions,
    )


def photometric_errors(
    first: np.ndarray, second: np.ndarray, camera: np.ndarray, forward: np.ndarray, box: Box = WHOLE_FRAME
) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel of a pair (grey ``float32[h, w]`` frames at the measuring size), how badly the second frame
    matches the first when pixels move as the ``camera`` flow says (a still scene's flow, with parallax) and as the
    flow says: ``(camera_error, flow_error)``,
    absolute differences averaged over a small window (where an object moves, the flow matches better; where
    the flow is an error on still background, the camera does). Over ``box`` of the frame only: the flows are
    given over it, and so are the errors."""
    grid = pixel_grid(*first.shape)[box]
    errors = []
    for motion in (camera, forward):
        moved = grid + motion
        warped = cv2.remap(second, moved[..., 0], moved[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        errors.append(cv2.blur(np.abs(first[box] - warped), (PHOTOMETRIC_WINDOW_PX, PHOTOMETRIC_WINDOW_PX)))
    return errors[0], errors[1]


def region_box(mask: np.ndarray) -> Box:
    """The bounding box of ``mask``'s pixels (at least one), widened by the match window's reach: errors averaged
    over the box are, at those pixels, the whole frame's. Regions are small and frames are not."""
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    reach = PHOTOMETRIC_WINDOW_PX // 2
    height, width = mask.shape
    return (
        slice(max(int(rows[0]) - reach, 0), min(int(rows[-1]) + reach + 1, height)),
        slice(max(int(columns[0]) - reach, 0), min(int(columns[-1]) + reach + 1, width)),
    )


def regions_matched_better(
    mask: np.ndarray,
    frames: tuple[np.ndarray, np.ndarray],
    still: np.ndarray,
    moving: np.ndarray,
    ratio: float,
    box: Box,
) -> np.ndarray:
    """The connected regions of ``mask`` where the second of the grey ``frames``, moved by the ``moving`` flow,
    matches the first at least ``ratio`` times better than moved by the ``still`` one: confirmed_regions over the
    photometric errors of ``box`` (``region_box(mask)``) only, over which both flows are given."""
    kept = np.zeros_like(mask)
    kept[box] = confirmed_regions(mask[box], *photometric_errors(*frames, still, moving, box), ratio)
    return kept


def pixels_matched_better(
    mask: np.ndarray, frames: tuple[np.ndarray, np.ndarray], still: np.ndarray, moving: np.ndarray
) -> np.ndarray:
    """The pixels of ``mask`` where the second of the grey ``frames``, moved by the ``moving`` flow, matches the first
    better than moved by the ``still`` one (``photometric_errors`` over ``region_box(mask)``); all of ``mask`` where
    none does. Flow smoothed past a moving object's edge moves a halo of still background with it, at speeds between
    the object's and none: the frames do not bear that motion out, and read with the object it pulls the object's
    median speed down."""
    if not mask.any():
        return mask
    box = region_box(mask)
    camera_error, flow_error = photometric_errors(*frames, still[box], moving[box], box)
    kept = np.zeros_like(mask)
    kept[box] = mask[box] & (camera_error > flow_error)
    return kept if kept.any() else mask


def confirm_ratio_at(ratio: float, short_side_px: int) -> float:
    """The confirmation ratio for a pair measured ``short_side_px`` high: ``ratio`` was measured at
    ``CONFIRM_REFERENCE_PX``. On a smaller frame the same motion (in %diag/s) moves the pixels fewer px, and the flow's
    match gain over the camera's shrinks with the distance, so the ratio's excess over 1 shrinks in proportion (at a
    96 px processing size, 1.375 for 2.0); a larger frame keeps ``ratio``."""
    return 1 + (ratio - 1) * min(1.0, short_side_px / CONFIRM_REFERENCE_PX)


def confirmed_regions(mask: np.ndarray, camera_error: np.ndarray, flow_error: np.ndarray, ratio: float) -> np.ndarray:
    """The connected regions of ``mask`` whose pixels the flow matches clearly better than the camera does
    (mean errors over the region at least ``ratio`` apart)."""
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    return labels_matched_better(labels, count, camera_error, flow_error, ratio)[labels]


def labels_matched_better(
    labels: np.ndarray, count: int, camera_error: np.ndarray, flow_error: np.ndarray, ratio: float
) -> np.ndarray:
    """``bool[count]``: per region of ``labels`` (0 is none, never kept), whether the flow's match errors summed over
    it are at least ``ratio`` times below the camera's."""
    camera_sum = np.bincount(labels.ravel(), camera_error.ravel(), minlength=count)
    flow_sum = np.bincount(labels.ravel(), flow_error.ravel(), minlength=count)
    keep = camera_sum > ratio * flow_sum
    keep[0] = False
    return keep

"""Sources -> harmonised DatasetDict: parquet folders, imagefolders, splits, bad images, clear errors."""

import numpy as np
import pytest
import torch
from datasets import Dataset, Features, Image, Value
from PIL import Image as PILImage

from fer_hf.data.labels import CLASSES, LABEL2ID, label_mapping
from fer_hf.data.sources import DataArguments, build_datasets, class_counts, format_class_counts, harmonise, load_spec
from fer_hf.data.transforms import FerCollator, FerTransform


def test_parquet_folder_maps_labels_by_name(parquet_folder, tiny_dataset):
    dd = build_datasets(DataArguments(datasets=[str(parquet_folder)]))
    assert set(dd) == {"train", "validation"} and len(dd["validation"]) == 14  # the source's own split is kept
    assert dd["train"].features["label"].names == list(CLASSES)
    src_names = tiny_dataset["train"].features["label"].names
    expected = [LABEL2ID[{"angry": "anger", "happy": "happiness", "sad": "sadness"}.get(n, n)] for n in src_names]
    got = np.asarray(dd["train"].with_format(None)["label"])
    assert list(got) == [expected[i] for i in tiny_dataset["train"]["label"]]
    assert set(dd["train"]["source"]) == {"ferlike"}


def test_imagefolder_with_aliases_gets_a_stratified_split(imagefolder):
    dd = build_datasets(DataArguments(datasets=[str(imagefolder)], validation_split=0.25), seed=3)
    counts = class_counts(dd)
    held_out = counts["validation"]["imgs"]
    assert sum(held_out.values()) == 8 and all(1 <= v <= 2 for v in held_out.values())  # every class held out
    assert sum(counts["train"]["imgs"].values()) + sum(counts["validation"]["imgs"].values()) == 29
    table = format_class_counts(counts)
    assert "happiness" in table and "imgs" in table
    again = build_datasets(DataArguments(datasets=[str(imagefolder)], validation_split=0.25), seed=3)
    assert again["validation"]["label"] == dd["validation"]["label"]  # seeded


def test_contempt_is_dropped_with_count(caplog):
    from datasets import ClassLabel

    names = ["neutral", "happy", "contempt"]
    ds = Dataset.from_dict({"image": [None] * 6, "label": [0, 1, 2, 2, 1, 0]},
                           features=Features({"image": Image(), "label": ClassLabel(names=names)}))
    out = harmonise(ds, "affectnet")
    assert len(out) == 4 and sorted(out["label"]) == sorted([LABEL2ID["neutral"]] * 2 + [LABEL2ID["happiness"]] * 2)
    assert "dropped 2" in caplog.text and "contempt" in caplog.text


def test_bare_integer_labels_point_to_prepare_data():
    ds = Dataset.from_dict({"image": [None], "label": [3]}, features=Features({"image": Image(), "label": Value("int64")}))
    with pytest.raises(ValueError, match="prepare_data.py"):
        harmonise(ds, "rafdb")


def test_unknown_spec_and_offline_hub_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a Hub id"):
        load_spec(str(tmp_path / "nope" / "deeper" / "x"))
    from fer_hf.utils.offline import HubUnreachableError

    with pytest.raises(HubUnreachableError, match="synthetic"):
        load_spec("deanngkl/ferplus-7cls")


def test_transform_and_collator_skip_bad_images(imagefolder):
    dd = build_datasets(DataArguments(datasets=[str(imagefolder)], validation_split=0.25))
    train = dd["train"]
    train.set_transform(FerTransform(32, train=True))
    rows = [train[i] for i in range(len(train))]
    bad = [r for r in rows if r["pixel_values"] is None]
    assert len(bad) <= 1  # the broken png, if it landed in train
    collate = FerCollator([0.5] * 3, [0.5] * 3, 32)
    batch = collate(rows)
    assert batch["pixel_values"].shape == (len(rows) - len(bad), 3, 32, 32)
    assert batch["pixel_values"].dtype == torch.float32 and -1.01 <= batch["pixel_values"].min() <= 1.01
    assert collate.skipped == len(bad)
    empty = collate([{"pixel_values": None, "labels": 0}])
    assert empty["pixel_values"].shape == (0, 3, 32, 32) and collate.skipped == len(bad) + 1


def test_teacher_view_is_the_face_with_the_students_flip_only():
    import io

    import numpy as np
    from PIL import Image as PILImage

    pixels = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)  # no symmetry: a flip shows
    buf = io.BytesIO()
    PILImage.fromarray(pixels).save(buf, "PNG")
    batch = {"image": [{"bytes": buf.getvalue(), "path": None}] * 16 + [{"bytes": b"not an image", "path": "x.png"}],
             "label": [0] * 17}
    face = torch.from_numpy(pixels).permute(2, 0, 1)
    flip_only = FerTransform(32, train=True, rotation=0, color_jitter=0, teacher_view=True)(batch)
    assert all(torch.equal(a, b) for a, b in zip(flip_only["pixel_values"][:16], flip_only["teacher_pixel_values"][:16]))
    assert {torch.equal(t, face) for t in flip_only["teacher_pixel_values"][:16]} == {True, False}  # both flips drawn
    shifted = FerTransform(32, train=True, rotation=0, translate=0.2, color_jitter=0, teacher_view=True)
    out = shifted(batch)
    assert shifted.views == 2 and FerTransform(32, train=True, translate=0.2).views is None
    assert all(torch.equal(t, face) or torch.equal(t, face.flip(-1)) for t in out["teacher_pixel_values"][:16])
    assert not all(torch.equal(a, b) for a, b in zip(out["pixel_values"][:16], out["teacher_pixel_values"][:16]))
    # the same augmentation stream as without the teacher's view, and the bad image dropped from both
    alone = FerTransform(32, train=True, rotation=0, translate=0.2, color_jitter=0)(batch)["pixel_values"]
    assert all(torch.equal(a, b) for a, b in zip(alone[:16], out["pixel_values"][:16]))
    assert out["pixel_values"][16] is None and out["teacher_pixel_values"][16] is None
    rows = [{"pixel_values": p, "teacher_pixel_values": t, "labels": 0}
            for p, t in zip(out["pixel_values"], out["teacher_pixel_values"])]
    collated = FerCollator([0.5] * 3, [0.5] * 3, 32)(rows)
    assert collated["teacher_pixel_values"].shape == collated["pixel_values"].shape == (16, 3, 32, 32)
    assert torch.allclose(collated["teacher_pixel_values"][0], rows[0]["teacher_pixel_values"].float() / 127.5 - 1,
                          atol=1e-6)
    assert "teacher_pixel_values" not in FerTransform(32, train=False, teacher_view=True)(batch)


def test_augmentation_knobs_shift_zoom_erase_and_reject_out_of_range():
    import io

    from PIL import Image as PILImage

    buf = io.BytesIO()
    PILImage.new("RGB", (32, 32), (200, 200, 200)).save(buf, "PNG")  # a flat face: any black pixel was made
    batch = {"image": [{"bytes": buf.getvalue(), "path": None}] * 64, "label": [0] * 64}
    plain = FerTransform(32, train=True, rotation=0, color_jitter=0)(batch)["pixel_values"]
    assert all(torch.equal(x, plain[0]) for x in plain)  # flips of a flat image change nothing
    erased = FerTransform(32, train=True, rotation=0, color_jitter=0, random_erasing=0.5)(batch)["pixel_values"]
    n_erased = sum(bool((x == 0).all(0).any()) for x in erased)
    assert 16 <= n_erased <= 48  # about half of them, each with a zero rectangle
    shifted = FerTransform(32, train=True, rotation=0, translate=0.2, scale_jitter=0.2, color_jitter=0)(batch)
    assert sum(bool((x == 0).any()) for x in shifted["pixel_values"]) > 32  # the warp brings in empty borders
    again = FerTransform(32, train=True, rotation=0, translate=0.2, scale_jitter=0.2, color_jitter=0)(batch)
    assert all(torch.equal(a, b) for a, b in zip(shifted["pixel_values"], again["pixel_values"]))  # seeded per batch
    for bad in ({"translate": 0.7}, {"random_erasing": 1.5}, {"rotation": -1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            FerTransform(32, train=True, **bad)
    args = DataArguments(translate=0.1, random_erasing=0.25)
    assert args.augmentation() == {"rotation": 10.0, "translate": 0.1, "scale_jitter": 0.0, "color_jitter": 0.2,
                                   "random_erasing": 0.25, "crop_scale": 1.0, "policy": "none"}


@pytest.mark.parametrize("policy", ["trivialaugment", "randaugment", "autoaugment"])
def test_augmentation_policies_and_random_crops_are_seeded_per_batch(policy):
    rng = np.random.default_rng(5)
    batch = {"image": [PILImage.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)) for _ in range(16)],
             "label": [0] * 16}
    plain = FerTransform(64, train=True, rotation=0, color_jitter=0, seed=3)(batch)["pixel_values"]
    strong = FerTransform(64, train=True, rotation=0, color_jitter=0, policy=policy, crop_scale=0.5, seed=3)
    out, again = strong(batch)["pixel_values"], strong(batch)["pixel_values"]
    assert all(x.shape == (3, 64, 64) and x.dtype == torch.uint8 for x in out)
    assert all(torch.equal(a, b) for a, b in zip(out, again))  # resumable: the batch seeds its own draws
    assert sum(not torch.equal(a, b) for a, b in zip(out, plain)) >= 12
    with pytest.raises(ValueError, match="policy"):
        FerTransform(32, train=True, policy="mixup")
    with pytest.raises(ValueError, match="crop_scale"):
        FerTransform(32, train=True, crop_scale=0.01)
    ev = FerTransform(64, train=False, policy=policy, crop_scale=0.5)  # evaluation never augments
    assert torch.equal(ev(batch)["pixel_values"][0], ev(batch)["pixel_values"][0])


def test_upscaled_sources_are_augmented_before_the_resize():
    """A 16 px source trained at 48 px: augmented small, then resized; same shape, warped, seeded per batch."""
    import io

    from PIL import Image as PILImage

    buf = io.BytesIO()
    PILImage.new("RGB", (16, 16), (200, 200, 200)).save(buf, "PNG")
    batch = {"image": [{"bytes": buf.getvalue(), "path": None}] * 32, "label": [0] * 32}
    transform = FerTransform(48, train=True, rotation=0, translate=0.2, color_jitter=0)
    out = transform(batch)["pixel_values"]
    assert all(x.shape == (3, 48, 48) and x.dtype == torch.uint8 for x in out)
    assert sum(bool((x < 100).any()) for x in out) > 16  # shifted at 16 px: dark borders survive the upscale
    assert all(torch.equal(a, b) for a, b in zip(out, transform(batch)["pixel_values"]))
    plain = FerTransform(48, train=False)(batch)["pixel_values"]  # evaluation: resize only
    assert all(bool((x == 200).all()) for x in plain)


def _voted_folder(tmp_path, tiny_dataset):
    """`tiny_dataset` in FER+ shape: a `votes` column (ten counts, FER+ order) next to the majority label."""
    from datasets import List

    folder = tmp_path / "voted"
    (folder / "data").mkdir(parents=True)
    for split, ds in tiny_dataset.items():
        votes = [[6, 2, 0, 0, 0, 0, 0, 1, 1, 0] for _ in range(len(ds))]  # neutral 6, happiness 2, contempt, unknown
        ds.add_column("votes", votes, feature=List(Value("int32"))).to_parquet(str(folder / "data" / f"{split}-00000-of-00001.parquet"))
    return folder


def test_vote_distribution_drops_non_emotions_and_renormalises():
    from fer_hf.data.sources import vote_distribution

    dist = vote_distribution([[6, 2, 0, 0, 0, 0, 0, 1, 1, 0], [0] * 7 + [5, 5, 0]], np.array([4, 2]))
    assert np.allclose(dist[0, [LABEL2ID["neutral"], LABEL2ID["happiness"]]], [0.75, 0.25]) and np.isclose(dist[0].sum(), 1)
    assert np.allclose(dist[1], np.eye(7)[2])  # no emotion vote at all: its one-hot label
    with pytest.raises(ValueError, match="10 counts"):
        vote_distribution([[1, 2, 3]], np.array([0]))


def test_label_mode_votes_trains_on_the_distribution(tmp_path, tiny_dataset, parquet_folder):
    voted = _voted_folder(tmp_path, tiny_dataset)
    dd = build_datasets(DataArguments(datasets=[str(voted), str(parquet_folder)], label_mode="votes"))
    assert "soft_label" in dd["train"].column_names and "soft_label" not in dd["validation"].column_names
    soft = np.asarray(dd["train"]["soft_label"])
    from_votes = np.asarray(dd["train"]["source"]) == "voted"
    assert np.allclose(soft[from_votes][:, LABEL2ID["neutral"]], 0.75)
    assert np.allclose(soft[~from_votes], np.eye(7)[np.asarray(dd["train"]["label"])[~from_votes]])  # no votes: one-hot
    dd["train"].set_transform(FerTransform(32, train=True))
    batch = FerCollator([0.5] * 3, [0.5] * 3, 32)([dd["train"][i] for i in range(3)])
    assert batch["soft_labels"].shape == (3, 7) and torch.allclose(batch["soft_labels"].sum(1), torch.ones(3))
    majority = build_datasets(DataArguments(datasets=[str(voted)]))
    assert "soft_label" not in majority["train"].column_names  # majority mode: nothing extra per row


def test_second_labels_blend_the_other_annotators_label_into_the_targets(tmp_path, tiny_dataset, parquet_folder,
                                                                        imagefolder, caplog):
    """FER+-like votes (neutral 0.75, happiness 0.25) + FER2013-like labels of the same faces, weight 0.3."""
    import logging

    caplog.set_level(logging.INFO, "fer_hf")
    voted = _voted_folder(tmp_path, tiny_dataset)
    for mode in ("votes", "majority"):
        dd = build_datasets(DataArguments(datasets=[str(voted)], label_mode=mode, second_labels=str(parquet_folder),
                                          second_label_weight=0.3))
        soft, labels = np.asarray(dd["train"]["soft_label"]), np.asarray(dd["train"]["label"])
        base = np.zeros(7)
        base[[LABEL2ID["neutral"], LABEL2ID["happiness"]]] = [0.75, 0.25]
        # the voted folder holds tiny_dataset's faces and labels (majority) with neutral-heavy votes; the second
        # source is tiny_dataset itself, in FER2013's scheme
        mapping = label_mapping(tiny_dataset["train"].features["label"].names, "fer2013-like")
        other = np.eye(7)[mapping[np.asarray(tiny_dataset["train"]["label"])]]
        first = base if mode == "votes" else other
        assert np.allclose(soft, 0.7 * first + 0.3 * other, atol=1e-6)
        assert (labels == other.argmax(1)).all()  # the scored (majority) label is unchanged
        assert "soft_label" not in dd["validation"].column_names
    assert "28 of 28 training faces matched" in caplog.text
    with pytest.raises(ValueError, match="same faces"):
        build_datasets(DataArguments(datasets=[str(voted)], second_labels=str(imagefolder)))
    with pytest.raises(ValueError, match="second_label_weight"):
        DataArguments(second_label_weight=1.5)


def test_label_mode_votes_needs_votes(parquet_folder):
    with pytest.raises(ValueError, match="votes"):
        build_datasets(DataArguments(datasets=[str(parquet_folder)], label_mode="votes"))
    with pytest.raises(ValueError, match="label_mode"):
        DataArguments(label_mode="vote")


def test_two_folders_of_the_same_name_and_card_do_not_share_a_cache(tmp_path):
    """datasets caches a README-`configs` folder under a hash blind to its location and files (see load_spec)."""
    card = "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/train-*\n---\n"
    from datasets import ClassLabel

    for where, n in (("a", 3), ("b", 5)):
        folder = tmp_path / where / "faces"
        (folder / "data").mkdir(parents=True)
        rows = Dataset.from_dict({"image": [None] * n, "label": [0] * n},
                                 features=Features({"image": Image(), "label": ClassLabel(names=["happy"])}))
        rows.to_parquet(str(folder / "data" / "train-00000-of-00001.parquet"))
        (folder / "README.md").write_text(card)
    assert len(load_spec(str(tmp_path / "a" / "faces"))["faces"]["train"]) == 3
    assert len(load_spec(str(tmp_path / "b" / "faces"))["faces"]["train"]) == 5


def test_to_grey_is_pillows_grey_in_integers():
    """The collator's grey (and fer.js's, the same integers) is byte for byte PIL's "L"; grey pixels stay as they are."""
    from fer_hf.data.transforms import to_grey

    rgb = np.random.default_rng(0).integers(0, 256, (2, 17, 19, 3), dtype=np.uint8)
    rgb[1, ..., 1] = rgb[1, ..., 2] = rgb[1, ..., 0]  # an already grey image
    out = to_grey(torch.from_numpy(rgb).permute(0, 3, 1, 2))
    for i in range(2):
        want = np.asarray(PILImage.fromarray(rgb[i]).convert("L"))
        assert (out[i] == torch.from_numpy(want)).all()
    assert (out[1, 0] == torch.from_numpy(rgb[1, ..., 0])).all()
    grey = FerCollator([0.5] * 3, [0.5] * 3, 19, grayscale=True).normalise(torch.from_numpy(rgb).permute(0, 3, 1, 2))
    assert torch.equal(grey[:, 0], grey[:, 2])

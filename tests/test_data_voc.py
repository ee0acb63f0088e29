"""The VOC reader on a tiny tree written here in real VOC format (palette PNGs, XML), and its clear errors."""

from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import tv_tensors
from torchvision.ops import masks_to_boxes
from torchvision.transforms import v2

from deconvnet.data.voc import VOC_CLASSES, VOCSegmentation, class_and_scale_stats, voc_colormap

# A few colours of VOC's own colour map, as the devkit lists them: background, aeroplane, person, tvmonitor, void
KNOWN_COLOURS = {0: (0, 0, 0), 1: (128, 0, 0), 15: (192, 128, 128), 20: (0, 64, 128), 255: (224, 224, 192)}


def _palette() -> list[int]:
    flat = [0] * 768
    for index, rgb in KNOWN_COLOURS.items():
        flat[3 * index:3 * index + 3] = rgb
    return flat


def _png(path: Path, values: np.ndarray) -> None:
    im = Image.new("P", (values.shape[1], values.shape[0]))
    im.putpalette(_palette())
    im.putdata(values.ravel().tolist())
    im.save(path)


def _xml(path: Path, size_wh, objects) -> None:
    parts = [f"<object><name>{n}</name><pose>Left</pose><truncated>0</truncated><difficult>{d}</difficult>"
             f"<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
             for n, (x0, y0, x1, y1), d in objects]
    path.write_text(f"<annotation><folder>VOC2012</folder><filename>{path.stem}.jpg</filename><size>"
                    f"<width>{size_wh[0]}</width><height>{size_wh[1]}</height><depth>3</depth></size>"
                    f"<segmented>1</segmented>{''.join(parts)}</annotation>")


def _write_image(voc: Path, image_id: str, cls: np.ndarray, obj: np.ndarray, objects) -> None:
    h, w = cls.shape
    rng = np.random.default_rng(len(image_id))
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(voc / "JPEGImages" / f"{image_id}.jpg")
    _png(voc / "SegmentationClass" / f"{image_id}.png", cls)
    _png(voc / "SegmentationObject" / f"{image_id}.png", obj)
    _xml(voc / "Annotations" / f"{image_id}.xml", (w, h), objects)


@pytest.fixture
def tiny_voc(tmp_path) -> Path:
    """Two train images and one val image: a person and a plane with void boundaries; a tv monitor."""
    voc = tmp_path / "VOCdevkit" / "VOC2012"
    for folder in ("JPEGImages", "SegmentationClass", "SegmentationObject", "Annotations", "ImageSets/Segmentation"):
        (voc / folder).mkdir(parents=True)
    cls, obj = np.zeros((30, 40), np.uint8), np.zeros((30, 40), np.uint8)
    cls[5:15, 4:12], obj[5:15, 4:12] = 15, 1  # person: x 4..11, y 5..14
    cls[18:28, 20:38], obj[18:28, 20:38] = 1, 2  # aeroplane: x 20..37, y 18..27
    for m in (cls, obj):
        m[4, 4:12] = m[17, 20:38] = 255  # void band above each
    _write_image(voc, "2007_000001", cls, obj, [("person", (5, 6, 12, 15), 0), ("aeroplane", (21, 19, 38, 28), 1)])
    cls2, obj2 = np.zeros((20, 20), np.uint8), np.zeros((20, 20), np.uint8)
    cls2[2:18, 3:17], obj2[2:18, 3:17] = 20, 1
    _write_image(voc, "2007_000002", cls2, obj2, [("tvmonitor", (4, 3, 17, 18), 0)])
    _write_image(voc, "2007_000003", cls2, obj2, [("tvmonitor", (4, 3, 17, 18), 0)])
    split = voc / "ImageSets" / "Segmentation"
    (split / "train.txt").write_text("2007_000001\n2007_000002\n")
    (split / "val.txt").write_text("2007_000003\n")
    return tmp_path


def test_colour_map_is_vocs():
    cmap = voc_colormap()
    assert cmap.shape == (256, 3) and cmap.dtype == np.uint8
    for index, rgb in KNOWN_COLOURS.items():
        assert tuple(cmap[index]) == rgb


def test_reader_returns_tv_tensors_with_instances_from_the_masks(tiny_voc):
    ds = VOCSegmentation(tiny_voc, "train")
    assert len(ds) == 2 and ds.classes == VOC_CLASSES
    image, target = ds[0]
    assert isinstance(image, tv_tensors.Image) and image.shape == (3, 30, 40) and image.dtype == torch.uint8
    assert isinstance(target["mask"], tv_tensors.Mask) and target["mask"].shape == (30, 40)
    assert isinstance(target["boxes"], tv_tensors.BoundingBoxes) and target["boxes"].canvas_size == (30, 40)
    assert target["labels"].tolist() == [15, 1]
    assert target["boxes"].tolist() == [[4, 5, 12, 15], [20, 18, 38, 28]]  # XYXY, right/bottom exclusive
    assert target["masks"].shape == (2, 30, 40) and target["masks"][0].sum() == 80
    assert target["difficult"].tolist() == [False, True]
    assert target["image_id"] == "2007_000001"
    assert set(target["mask"].unique().tolist()) == {0, 1, 15, 255}


def test_reader_accepts_the_voc2012_folder_itself(tiny_voc):
    assert VOCSegmentation(tiny_voc / "VOCdevkit" / "VOC2012", "val").ids == ["2007_000003"]


def test_transforms_v2_move_image_masks_and_boxes_together(tiny_voc):
    flip_and_grow = v2.Compose([v2.RandomHorizontalFlip(p=1.0), v2.Resize((60, 80))])
    image, target = VOCSegmentation(tiny_voc, "train", transforms=flip_and_grow)[0]
    assert image.shape == (3, 60, 80) and target["mask"].shape == (60, 80)
    assert torch.equal(masks_to_boxes(target["masks"]) + torch.tensor([0, 0, 1, 1]), target["boxes"])
    assert target["boxes"][0].tolist() == [56, 10, 72, 30]  # person at x 4..12 of 40 -> 28..36, then x2
    assert target["mask"][10:30, 56:72].eq(15).all() and target["mask"][:, :56].ne(15).all()


def test_class_and_scale_stats(tiny_voc):
    stats = class_and_scale_stats(VOCSegmentation(tiny_voc, "train"))
    assert stats["class_counts"][[1, 15, 20]].tolist() == [1, 1, 1] and stats["class_counts"].sum() == 3
    assert np.allclose(sorted(stats["scales"]), sorted([np.sqrt(80 / 1200), np.sqrt(180 / 1200), np.sqrt(224 / 400)]))


def test_missing_root_names_the_expected_split_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere/VOCdevkit/VOC2012/ImageSets/Segmentation/train\.txt"):
        VOCSegmentation(tmp_path / "nowhere", "train")


def test_missing_split_file_names_it(tiny_voc):
    with pytest.raises(FileNotFoundError, match=r"ImageSets/Segmentation/test\.txt"):
        VOCSegmentation(tiny_voc, "test")


def test_image_without_mask_is_refused_before_loading(tiny_voc):
    (tiny_voc / "VOCdevkit/VOC2012/SegmentationClass/2007_000002.png").unlink()
    with pytest.raises(FileNotFoundError, match="2007_000002 is listed in .*train.txt but .*02.png is missing"):
        VOCSegmentation(tiny_voc, "train")


def test_corrupt_image_says_which_file(tiny_voc):
    (tiny_voc / "VOCdevkit/VOC2012/JPEGImages/2007_000002.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    ds = VOCSegmentation(tiny_voc, "train")
    with pytest.raises(ValueError, match=r"cannot read image .*2007_000002\.jpg.*damaged"):
        ds[1]


def test_error_in_a_dataloader_worker_stays_readable(tiny_voc):
    (tiny_voc / "VOCdevkit/VOC2012/JPEGImages/2007_000002.jpg").write_bytes(b"garbage")
    batches = iter(DataLoader(VOCSegmentation(tiny_voc, "train"), batch_size=None, num_workers=2))
    try:
        with pytest.raises(ValueError, match=r"cannot read image .*2007_000002\.jpg"):
            list(batches)
    finally:
        batches._shutdown_workers()  # else garbage collection joins each worker with a 5 s timeout


def test_mask_values_outside_the_classes_are_named(tiny_voc):
    bad = np.zeros((20, 20), np.uint8)
    bad[5:10, 5:10] = 37
    _png(tiny_voc / "VOCdevkit/VOC2012/SegmentationClass/2007_000002.png", bad)
    with pytest.raises(ValueError, match=r"holds values \[37\] outside 0\.\.20 and 255"):
        VOCSegmentation(tiny_voc, "train")[1]


def test_colour_masks_are_refused(tiny_voc):
    Image.new("RGB", (20, 20), (128, 0, 0)).save(tiny_voc / "VOCdevkit/VOC2012/SegmentationClass/2007_000002.png")
    with pytest.raises(ValueError, match="is a RGB image; VOC masks are palette"):
        VOCSegmentation(tiny_voc, "train")[1]


def test_mask_of_the_wrong_size_is_refused(tiny_voc):
    _png(tiny_voc / "VOCdevkit/VOC2012/SegmentationObject/2007_000002.png", np.zeros((10, 20), np.uint8))
    with pytest.raises(ValueError, match="is 20x10 but its image is 20x20"):
        VOCSegmentation(tiny_voc, "train")[1]


def test_box_outside_the_image_is_named(tiny_voc):
    _xml(tiny_voc / "VOCdevkit/VOC2012/Annotations/2007_000002.xml", (20, 20), [("tvmonitor", (4, 3, 25, 18), 0)])
    with pytest.raises(ValueError, match=r"2007_000002\.xml: object 1 \(tvmonitor\) has box .*xmax=25.* outside"):
        VOCSegmentation(tiny_voc, "train")[1]


def _write_sbd(root: Path, image_id: str, cls: np.ndarray, inst: np.ndarray) -> None:
    for folder in ("cls", "inst", "img"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(root / "cls" / f"{image_id}.mat", {"GTcls": {"Segmentation": cls, "CategoriesPresent": [8]}})
    scipy.io.savemat(root / "inst" / f"{image_id}.mat", {"GTinst": {"Segmentation": inst, "Categories": [8]}})
    Image.fromarray(np.full((*cls.shape, 3), 90, np.uint8)).save(root / "img" / f"{image_id}.jpg")


def test_sbd_adds_training_labels_but_never_voc_val_images(tiny_voc, tmp_path):
    sbd = tmp_path / "benchmark_RELEASE" / "dataset"
    cat = np.zeros((16, 16), np.uint8)
    cat[4:12, 2:10] = 8
    _write_sbd(sbd, "2008_000009", cat, (cat > 0).astype(np.uint8))
    _write_sbd(sbd, "2007_000003", cat, (cat > 0).astype(np.uint8))  # VOC val: must stay out of training
    (sbd / "train.txt").write_text("2008_000009\n")
    (sbd / "val.txt").write_text("2007_000003\n")
    ds = VOCSegmentation(tiny_voc, "train", sbd_root=tmp_path / "benchmark_RELEASE")
    assert ds.ids == ["2007_000001", "2007_000002", "2008_000009"]
    image, target = ds[2]
    assert image.shape == (3, 16, 16) and target["labels"].tolist() == [8]
    assert target["boxes"].tolist() == [[2, 4, 10, 12]]
    with pytest.raises(ValueError, match="SBD adds training labels only"):
        VOCSegmentation(tiny_voc, "val", sbd_root=sbd)
    with pytest.raises(FileNotFoundError, match="no SBD release"):
        VOCSegmentation(tiny_voc, "train", sbd_root=tmp_path / "nothing")


def bomb_png(path: Path, side: int = 14000) -> Path:
    """A PNG whose header says ``side`` x ``side`` pixels (more than PIL opens), with next to no data."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)  # 8-bit RGB
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0"))
                     + chunk(b"IEND", b""))
    return path


def test_huge_image_in_a_tree_is_one_clear_error(tiny_voc):
    bomb_png(tiny_voc / "VOCdevkit/VOC2012/SegmentationObject/2007_000002.png")
    with pytest.raises(ValueError, match=r"mask .*2007_000002\.png is too large to read safely \(Image size "
                                         r"\(196000000 pixels\) exceeds limit of 178956970 pixels\); VOC images "
                                         r".*shrink it"):
        VOCSegmentation(tiny_voc, "train")[1]
    image = tiny_voc / "VOCdevkit/VOC2012/JPEGImages/2007_000003.jpg"
    bomb_png(image)  # PIL reads a PNG whatever the name says
    with pytest.raises(ValueError, match=r"image .*2007_000003\.jpg is too large to read safely"):
        VOCSegmentation(tiny_voc, "val")[0]


def test_box_with_a_bad_or_missing_coordinate_names_file_and_field(tiny_voc):
    xml = tiny_voc / "VOCdevkit/VOC2012/Annotations/2007_000002.xml"
    _xml(xml, (20, 20), [("tvmonitor", ("abc", 3, 17, 18), 0)])
    with pytest.raises(ValueError, match=r"2007_000002\.xml: object 1 \(tvmonitor\) has <xmin>abc</xmin>, not a "
                                         r"number"):
        VOCSegmentation(tiny_voc, "train")[1]
    xml.write_text(xml.read_text().replace("<xmin>abc</xmin>", ""))
    with pytest.raises(ValueError, match=r"2007_000002\.xml: object 1 \(tvmonitor\) has no <bndbox><xmin>"):
        VOCSegmentation(tiny_voc, "train")[1]
    xml.write_text(xml.read_text().replace("<bndbox>", "<box>").replace("</bndbox>", "</box>"))
    with pytest.raises(ValueError, match=r"2007_000002\.xml: object 1 \(tvmonitor\) has no <bndbox><xmin>"):
        VOCSegmentation(tiny_voc, "train")[1]


def _as_generated(tiny_voc: Path):
    """Give the tiny tree a SynthVOC record, as make-data writes it, so that make_data reuses it."""
    import json

    from deconvnet.config import DataConfig
    from deconvnet.data.synthvoc import metadata
    from deconvnet.data.voc import METADATA

    cfg = DataConfig(train_images=2, val_images=1, image_size=64, proposal_side=64)
    (tiny_voc / "VOCdevkit/VOC2012" / METADATA).write_text(json.dumps(metadata(cfg)))
    return cfg


def test_damaged_generated_tree_says_delete_and_remake_without_doubling_the_path(tiny_voc):
    _as_generated(tiny_voc)
    (tiny_voc / "VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt").unlink()
    for root in (tiny_voc, tiny_voc / "VOCdevkit" / "VOC2012"):  # the base folder or the VOC2012 folder itself
        with pytest.raises(FileNotFoundError) as err:
            VOCSegmentation(root, "val")
        message = str(err.value)
        assert f"the generated tree {tiny_voc}/VOCdevkit/VOC2012 is damaged" in message
        assert f"Delete {tiny_voc}/VOCdevkit and run `python -m deconvnet make-data --root {tiny_voc}`" in message
        assert "VOC2012/VOCdevkit" not in message


def test_missing_voc2012_folder_suggests_the_base_as_root(tmp_path):
    voc = tmp_path / "VOCdevkit" / "VOC2012"
    with pytest.raises(FileNotFoundError, match=rf"make-data --root {tmp_path}`") as err:
        VOCSegmentation(voc, "train")
    assert "VOC2012/VOCdevkit" not in str(err.value)


def test_make_data_rebuilds_a_generated_tree_that_lost_files(tmp_path):
    from deconvnet.config import DataConfig
    from deconvnet.data import make_data

    cfg = DataConfig(train_images=4, val_images=2, image_size=64, min_scale=0.15, void_px=1, proposal_side=64)
    voc = tmp_path / "VOCdevkit" / "VOC2012"
    assert make_data(cfg, tmp_path, proposals=False, workers=1)["voc_root"] == voc
    # the VOC2012 or VOCdevkit folder means the same tree, not a new one nested inside it
    assert make_data(cfg, voc, proposals=False, workers=1)["voc_root"] == voc
    assert make_data(cfg, tmp_path / "VOCdevkit", proposals=False, workers=1)["voc_root"] == voc
    assert not (voc / "VOCdevkit").exists()
    lost = voc / "JPEGImages" / "synth_000003.jpg"
    lost.unlink()
    assert make_data(cfg, tmp_path, proposals=False, workers=1)["voc_root"] == voc
    assert lost.is_file(), "a tree whose files do not match its record is made again"


def test_make_data_refuses_a_root_that_is_a_file(tmp_path):
    from deconvnet.config import DataConfig
    from deconvnet.data import make_data

    file = tmp_path / "notes.txt"
    file.write_text("x")
    with pytest.raises(NotADirectoryError, match=rf"data root {file} is a file, not a folder"):
        make_data(DataConfig(), file, proposals=False)
    with pytest.raises(NotADirectoryError, match=rf"data root {file}/sub lies under {file}, which is a file"):
        make_data(DataConfig(), file / "sub", proposals=False)

"""What the commands read and write: images opened safely, output folders checked before the work.

Used by ``explain`` and ``segment`` (``deconvnet.cli``).
"""

from __future__ import annotations

from pathlib import Path


def output_stem(image) -> str:
    """``a.jpg`` -> ``a_jpg``: the outputs of ``a.jpg`` and ``a.png`` in one ``--out`` do not overwrite each other."""

    path = Path(image)
    return f"{path.stem}_{path.suffix[1:]}" if path.suffix else path.name


def out_folder(out: str):
    """``--out`` as a Path, refused now (before any work) if it is a file or cannot be written."""
    from deconvnet.files import check_folder

    return check_folder(out, f"--out {out}", "give a folder for the outputs (it is made if missing)")


def refuse_another_images_outputs(record, image, out) -> None:
    """``explain`` names its outputs by the image's stem: refuse to overwrite those of a differently named image."""
    import json

    try:
        made_from = json.loads(Path(record).read_text())["image"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # nothing there, or nothing that says where it came from
    if Path(made_from).name != Path(image).name:
        raise ValueError(f"--out {out} already holds {Path(record).stem}.png and .json, made from {made_from}; "
                         f"give {image} another --out, or delete them first")


def load_image(path, check_size=None):
    """``classifier.load_image``, after a look at the header: an image too large to decode is one clear line.

    ``check_size(path, w, h)`` may refuse the size before the pixels are decoded.
    """
    import warnings

    from PIL import Image

    from deconvnet.explain.classifier import load_image

    if Path(path).is_file():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(path) as im:  # reads the header only
                    w, h = im.size
        except Image.DecompressionBombError as err:
            raise ValueError(f"{path} is too large to open safely ({_bomb(err)}); shrink it first") from None
        except (OSError, SyntaxError, ValueError):
            pass  # load_image says what is wrong with it
        else:
            if check_size is not None:
                check_size(path, w, h)
    try:
        return load_image(path)
    except Image.DecompressionBombError as err:
        raise ValueError(f"{path} is too large to open safely ({_bomb(err)}); shrink it first") from None


def _bomb(err: Exception) -> str:
    """PIL's DecompressionBombError without its 'could be decompression bomb DOS attack'."""
    return str(err).split(", could be")[0].rstrip(".")

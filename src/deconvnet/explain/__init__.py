"""Looking inside trained networks (chapters 2, 3 and 7): the ImageNet VGG16 encoder on its own
(``imagenet``), Zeiler & Fergus projections (``projection``), the five saliency methods (``saliency``), the
ImageNet classifier they explain (``classifier``), linear probes of the decoder (``probe``) and their scores
with intervals (``probe_scores``), and the pointing game (``localisation``).
"""

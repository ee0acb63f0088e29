"""Inference and scoring (paper Sec. 5): one whole-image pass (``whole``), instance-wise inference over
proposals with the aggregation of Eq. 1 and 2 (``aggregate``), the ensemble with FCN-8s and the dense CRF
(``ensemble``), confusion-matrix metrics (``metrics``) and bootstrap intervals with verdicts (``intervals``).
"""

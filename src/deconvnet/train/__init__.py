"""Training (paper Sec. 4): the optimisation loop with exact resume (``engine``), stage 0's classifier on
centred crops (``stage0``), checkpoints and their cache keys (``checkpoint``), multi-GPU training
(``distributed``) and the recipes, stage 1 then stage 2, that chapters build models with (``pipeline``).
"""

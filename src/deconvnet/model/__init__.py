"""The networks of the paper (Sec. 3): DeconvNet's encoder, fc6/fc7 and mirrored decoder (``network``), its
parts, ``unpool`` with switches and the deconvolution blocks (``layers``), FCN-8s, ImageNet VGG16 weights for
the encoder (``pretrained``), the CPU fast path (``fastpath``), a layer table (``summary``), the transposed
convolution as an adjoint (``transposed``) and the decoder variants that chapter 3 compares (``variants``).
"""

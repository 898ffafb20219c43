"""The project's own ResNet-like CNN, sized for 64-128 px stimuli (backbone ``smallcnn``)."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["SmallCNN"]


class _BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                            nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity, inplace=True)


class SmallCNN(nn.Module):
    """A ResNet-like CNN for small (64-128 px) images, quick to train on a few CPU cores.

    Stem (5x5 conv, stride 2, then 2x2 max-pool) and four stages of basic residual blocks named
    ``layer1``..``layer4`` with strides 4, 8, 16 and 32 relative to the input, then global
    average pooling and a linear classifier ``fc``.

    Parameters
    ----------
    num_classes : int
        Outputs of the classifier.
    widths : sequence of 4 int
        Channels of the four stages.
    blocks : int
        Residual blocks per stage.
    """

    def __init__(self, num_classes: int = 10, widths=(32, 64, 128, 256), blocks: int = 1):
        super().__init__()
        if len(widths) != 4:
            raise ValueError(f"SmallCNN needs 4 stage widths, got {widths!r}")
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 5, 2, 2, bias=False), nn.BatchNorm2d(widths[0]),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(2))
        c_in = widths[0]
        for i, c in enumerate(widths):
            stage = [_BasicBlock(c_in, c, 1 if i == 0 else 2)]
            stage += [_BasicBlock(c, c, 1) for _ in range(blocks - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
            c_in = c
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# --------------------------------------------------------------------------------------------------
# The wrapper
# --------------------------------------------------------------------------------------------------

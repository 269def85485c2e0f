"""Exercise 05: other correct answers, and slips that each cost exactly the parts they break."""

ALTERNATIVES = {
    "shortcut-first": {
        "residual-block-answer": """
            def __init__(self, in_channels, out_channels, stride=1):
                super().__init__()
                needs_projection = stride != 1 or in_channels != out_channels
                self.shortcut = torch.nn.Sequential(
                    torch.nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                    torch.nn.BatchNorm2d(out_channels)) if needs_projection else None
                self.conv1 = torch.nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)
                self.bn1 = torch.nn.BatchNorm2d(out_channels)
                self.conv2 = torch.nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False)
                self.bn2 = torch.nn.BatchNorm2d(out_channels)

            def forward(self, x):
                out = torch.relu(self.bn1(self.conv1(x)))
                out = self.bn2(self.conv2(out))
                return torch.relu(torch.add(out, self.shortcut(x) if self.shortcut is not None else x))
        """,
        "padding-shortcut-answer": """
            batch, channels = x.shape[:2]
            if channels > out_channels:
                raise ValueError(f"cannot pad {channels} channels down to {out_channels}")
            kept = x[..., ::stride, ::stride]
            zeros = kept.new_zeros(batch, out_channels - channels, *kept.shape[2:])
            return torch.cat((kept, zeros), dim=1)
        """,
        "parameter-count-answer": """
            def conv(k, a, b):
                return k * k * a * b

            def bn(c):
                return 2 * c

            width, out = channels, 4 * channels
            total = conv(1, in_channels, width) + bn(width) + conv(3, width, width) + bn(width) + conv(1, width, out) + bn(out)
            if (in_channels, stride) != (out, 1):
                total += conv(1, in_channels, out) + bn(out)
            return total
        """,
        "branch-scale-answer": """
            # (1 + α²)^depth = growth, solved through logarithms
            return math.sqrt(math.expm1(math.log(growth) / depth))
        """,
        "gradient-spread-answer": """
            spreads = {}
            for depth in [4, 8, 16]:
                for residual in [False, True]:
                    spreads[depth, residual] = spread(depth, residual)
        """,
    },
    "index-select-and-pad": {
        "padding-shortcut-answer": """
            if out_channels < x.shape[1]:
                raise ValueError("need out_channels >= channels, got %d < %d" % (out_channels, x.shape[1]))
            rows = torch.arange(0, x.shape[2], stride)
            cols = torch.arange(0, x.shape[3], stride)
            kept = x.index_select(2, rows).index_select(3, cols)
            return torch.nn.functional.pad(kept, [0, 0, 0, 0, 0, out_channels - x.shape[1]])
        """,
        "parameter-count-answer": """
            c = channels
            projection = stride > 1 or in_channels != 4 * c
            return in_channels * c + 13 * c * c + 12 * c + (4 * c * in_channels + 8 * c) * projection
        """,
        "branch-scale-answer": """
            return float(torch.tensor(growth, dtype=torch.float64).pow(1.0 / depth).sub(1).clamp_min(0).sqrt())
        """,
    },
}

WRONG = {
    "relu-before-the-sum": ({"residual-block"}, {"residual-block-answer": """
        def __init__(self, in_channels, out_channels, stride=1):
            super().__init__()
            self.conv1 = torch.nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
            self.bn1 = torch.nn.BatchNorm2d(out_channels)
            self.conv2 = torch.nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
            self.bn2 = torch.nn.BatchNorm2d(out_channels)
            self.shortcut = None if stride == 1 and in_channels == out_channels else torch.nn.Sequential(
                torch.nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), torch.nn.BatchNorm2d(out_channels))

        def forward(self, x):
            residual = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
            return residual + (x if self.shortcut is None else self.shortcut(x))
    """}),
    "projection-of-three-by-three": ({"residual-block"}, {"residual-block-answer": """
        def __init__(self, in_channels, out_channels, stride=1):
            super().__init__()
            self.conv1 = torch.nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
            self.bn1 = torch.nn.BatchNorm2d(out_channels)
            self.conv2 = torch.nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
            self.bn2 = torch.nn.BatchNorm2d(out_channels)
            self.shortcut = None if stride == 1 and in_channels == out_channels else torch.nn.Sequential(
                torch.nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
                torch.nn.BatchNorm2d(out_channels))

        def forward(self, x):
            residual = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
            return F.relu(residual + (x if self.shortcut is None else self.shortcut(x)))
    """}),
    # torch's default: every convolution gets a bias, which the text excludes (and batch norm makes redundant)
    "convolutions-with-bias": ({"residual-block"}, {"residual-block-answer": """
        def __init__(self, in_channels, out_channels, stride=1):
            super().__init__()
            self.conv1 = torch.nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)
            self.bn1 = torch.nn.BatchNorm2d(out_channels)
            self.conv2 = torch.nn.Conv2d(out_channels, out_channels, 3, padding=1)
            self.bn2 = torch.nn.BatchNorm2d(out_channels)
            self.shortcut = None if stride == 1 and in_channels == out_channels else torch.nn.Sequential(
                torch.nn.Conv2d(in_channels, out_channels, 1, stride=stride), torch.nn.BatchNorm2d(out_channels))

        def forward(self, x):
            residual = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
            return F.relu(residual + (x if self.shortcut is None else self.shortcut(x)))
    """}),
    "subsampled-from-the-second-row": ({"padding-shortcut"}, {"padding-shortcut-answer": """
        channels = x.shape[1]
        if out_channels < channels:
            raise ValueError(f"out_channels={out_channels} is smaller than the input's {channels} channels")
        return F.pad(x[:, :, stride - 1::stride, stride - 1::stride], (0, 0, 0, 0, 0, out_channels - channels))
    """}),
    # a float32 canvas of zeros (torch's default dtype) with the subsampled input copied in
    "zeros-in-float32": ({"padding-shortcut"}, {"padding-shortcut-answer": """
        channels = x.shape[1]
        if out_channels < channels:
            raise ValueError(f"out_channels={out_channels} is smaller than the input's {channels} channels")
        kept = x[:, :, ::stride, ::stride]
        out = torch.zeros(x.shape[0], out_channels, kept.shape[2], kept.shape[3])
        out[:, :channels] = kept
        return out
    """}),
    "message-without-the-numbers": ({"padding-shortcut"}, {"padding-shortcut-answer": """
        channels = x.shape[1]
        if out_channels < channels:
            raise ValueError("out_channels must not be smaller than the number of input channels")
        return F.pad(x[:, :, ::stride, ::stride], (0, 0, 0, 0, 0, out_channels - channels))
    """}),
    "detached-from-x": ({"padding-shortcut"}, {"padding-shortcut-answer": """
        channels = x.shape[1]
        if out_channels < channels:
            raise ValueError(f"out_channels={out_channels} is smaller than the input's {channels} channels")
        return F.pad(x.detach()[:, :, ::stride, ::stride], (0, 0, 0, 0, 0, out_channels - channels))
    """}),
    # forgets that a stride-1 block changes the shape too when in_channels is not 4·channels
    "projection-only-when-strided": ({"parameter-count"}, {"parameter-count-answer": """
        count = in_channels * channels + 9 * channels ** 2 + 4 * channels ** 2 + 12 * channels
        if stride != 1:
            count += 4 * channels * in_channels + 8 * channels
        return count
    """}),
    # treats the norm as if it grew like 1 + α per block, keeping the cross term 2α xᵀWx
    "cross-term-kept": ({"branch-scale"}, {"branch-scale-answer": """
        return growth ** (1 / (2 * depth)) - 1
    """}),
    # counts the blocks of the whole network instead of the blocks per stage
    "blocks-not-per-stage": ({"gradient-spread"}, {"gradient-spread-answer": """
        spreads = {(depth, residual): spread(2 * depth, residual) for depth in (4, 8, 16) for residual in (False, True)}
    """}),
}

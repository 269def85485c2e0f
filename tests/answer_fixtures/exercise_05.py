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
            convolutions = 3 * 3 * (in_channels + out_channels) * out_channels
            batch_norms = 2 * out_channels * 2
            projection = (in_channels + 2) * out_channels if (in_channels != out_channels or stride > 1) else 0
            return convolutions + batch_norms + projection
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
            def conv(k, a, b):
                return k * k * a * b
            total = conv(3, in_channels, out_channels) + conv(3, out_channels, out_channels) + 4 * out_channels
            if (in_channels, stride) != (out_channels, 1):
                total += conv(1, in_channels, out_channels) + 2 * out_channels
            return total
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
    "subsampled-from-the-second-row": ({"padding-shortcut"}, {"padding-shortcut-answer": """
        channels = x.shape[1]
        if out_channels < channels:
            raise ValueError(f"out_channels={out_channels} is smaller than the input's {channels} channels")
        return F.pad(x[:, :, stride - 1::stride, stride - 1::stride], (0, 0, 0, 0, 0, out_channels - channels))
    """}),
    "batch-norms-not-counted": ({"parameter-count"}, {"parameter-count-answer": """
        count = 9 * in_channels * out_channels + 9 * out_channels * out_channels
        if stride != 1 or in_channels != out_channels:
            count += in_channels * out_channels
        return count
    """}),
}

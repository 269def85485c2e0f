"""Exercise 08: other correct answers, and slips that each cost exactly the parts they break."""

ALTERNATIVES = {
    "index-lists-and-full-svd": {
        "prune-dead-answer": """
            with torch.no_grad():
                fires = torch.relu(fc1(x)).amax(dim=0) > 0
                keep = [i for i in range(fc1.out_features) if fires[i]]
                first = nn.Linear(fc1.in_features, len(keep)).to(device=fc1.weight.device, dtype=fc1.weight.dtype)
                second = nn.Linear(len(keep), fc2.out_features).to(device=fc2.weight.device, dtype=fc2.weight.dtype)
                first.weight[:] = fc1.weight[keep]
                first.bias[:] = fc1.bias[keep]
                second.weight[:] = fc2.weight[:, keep]
                second.bias[:] = fc2.bias
            return first, second
        """,
        "low-rank-answer": """
            U, S, Vh = torch.linalg.svd(W, full_matrices=True)
            A = U[:, :k] @ torch.diag(S[:k])
            B = Vh[:k, :]
            return A, B
        """,
        "conv-macs-answer": """
            import math
            size = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
            positions = [len(range(0, extent + 2 * padding - dilation * (k - 1), stride))
                         for extent, k in zip((height, width), size)]
            return int(math.prod(size) * (in_channels / groups) * out_channels * math.prod(positions))
        """,
        "rank-sweep-answer": """
            total = float((sigma ** 2).sum())
            predicted_relative_error = {}
            for k in ranks:
                predicted_relative_error[k] = (float((sigma[k:] ** 2).sum()) / total) ** 0.5
        """,
        "rank-sweep-measure-answer": """
            accuracy_by_rank = {}
            for k in ranks:
                accuracy_by_rank[k] = accuracy_at_rank(k)
            good = [k for k in ranks if full_accuracy - accuracy_by_rank[k] <= 0.01]
            smallest_good_rank = good[0]
        """,
        "int8-quantize-answer": ("""
            lo = a if a < 0 else 0.0
            hi = b if b > 0 else 0.0
            scale = (hi - lo) / 255.0
            return scale, max(0, min(255, round(-lo / scale)))
        """, """
            return ((x / s).round().long() + z).clamp(0, 255)
        """, """
            return (q - z).float() * s
        """),
    },
    "another-check-and-vectors": {
        "pruning-check-answer": """
            torch.manual_seed(5)
            for _ in range(3):
                fc1, fc2 = nn.Linear(2, 16), nn.Linear(16, 3)
                with torch.no_grad():
                    fc1.bias[:5] = -100.0
                    fc1.weight[15] = torch.tensor([4.0, 0.0])
                    fc1.bias[15] = -3.9
                x = torch.rand(25, 2) * 0.9
                x[3, 0] = 1.0
                copies = [t.clone() for t in (fc1.weight, fc1.bias, fc2.weight, fc2.bias)]
                with torch.no_grad():
                    alive = torch.relu(fc1(x)).gt(0).any(0)
                    wanted = [fc1.weight[alive], fc1.bias[alive], fc2.weight[:, alive], fc2.bias]
                    wanted = [t.clone() for t in wanted]
                try:
                    new1, new2 = candidate(fc1, fc2, x)
                except Exception:
                    return False
                given = [new1.weight, new1.bias, new2.weight, new2.bias]
                if not all(a.shape == b.shape and torch.equal(a, b) for a, b in zip(given, wanted)):
                    return False
                if not all(torch.equal(a, b) for a, b in zip(copies, (fc1.weight, fc1.bias, fc2.weight, fc2.bias))):
                    return False
            return True
        """,
        "low-rank-answer": """
            U, S, V = torch.svd(W)
            return U[:, :k] @ torch.diag(S[:k]), (V[:, :k] * 1.0).T
        """,
        "rank-sweep-answer": """
            squares = torch.cumsum(sigma.flip(0).double() ** 2, 0).flip(0)
            predicted_relative_error = {k: (squares[k] / squares[0]).sqrt().item() for k in ranks}
        """,
    },
}

WRONG = {
    # prune-dead: one fixture per requirement the text lists
    "units-judged-by-their-mean": ({"prune-dead"}, {"prune-dead-answer": """
        with torch.no_grad():
            keep = (fc1(x).mean(dim=0) > 0).nonzero().squeeze(1)
            new1 = nn.Linear(fc1.in_features, keep.numel())
            new2 = nn.Linear(keep.numel(), fc2.out_features)
            new1.weight.copy_(fc1.weight[keep])
            new1.bias.copy_(fc1.bias[keep])
            new2.weight.copy_(fc2.weight[:, keep])
            new2.bias.copy_(fc2.bias)
        return new1, new2
    """}),
    "most-active-units-first": ({"prune-dead"}, {"prune-dead-answer": """
        with torch.no_grad():
            counts = (torch.relu(fc1(x)) > 0).sum(dim=0)
            keep = torch.argsort(counts, descending=True, stable=True)[: int((counts > 0).sum())]
            new1 = nn.Linear(fc1.in_features, keep.numel())
            new2 = nn.Linear(keep.numel(), fc2.out_features)
            new1.weight.copy_(fc1.weight[keep])
            new1.bias.copy_(fc1.bias[keep])
            new2.weight.copy_(fc2.weight[:, keep])
            new2.bias.copy_(fc2.bias)
        return new1, new2
    """}),
    "second-bias-not-copied": ({"prune-dead"}, {"prune-dead-answer": """
        with torch.no_grad():
            alive = (torch.relu(fc1(x)) > 0).any(dim=0)
            keep = alive.nonzero().squeeze(1)
            new1 = nn.Linear(fc1.in_features, keep.numel(), dtype=fc1.weight.dtype, device=fc1.weight.device)
            new2 = nn.Linear(keep.numel(), fc2.out_features, dtype=fc2.weight.dtype, device=fc2.weight.device)
            new1.weight.copy_(fc1.weight[keep])
            new1.bias.copy_(fc1.bias[keep])
            new2.weight.copy_(fc2.weight[:, keep])
        return new1, new2
    """}),
    "prunes-the-layers-in-place": ({"prune-dead"}, {"prune-dead-answer": """
        with torch.no_grad():
            keep = (torch.relu(fc1(x)) > 0).any(dim=0).nonzero().squeeze(1)
            fc1.weight = nn.Parameter(fc1.weight[keep])
            fc1.bias = nn.Parameter(fc1.bias[keep])
            fc1.out_features = keep.numel()
            fc2.weight = nn.Parameter(fc2.weight[:, keep])
            fc2.in_features = keep.numel()
        return fc1, fc2
    """}),
    # pruning-check: it must test that the originals stay unchanged, and must not raise on wrong sizes
    "check-trusts-the-originals": ({"pruning-check"}, {"pruning-check-answer": """
        generator = torch.Generator().manual_seed(0)
        fc1, fc2 = nn.Linear(4, 30), nn.Linear(30, 2)
        with torch.no_grad():
            for p in (*fc1.parameters(), *fc2.parameters()):
                p.copy_(torch.randn(p.shape, generator=generator))
            fc1.bias[:10] = -50.0
            fc1.weight[29] = 0.0
            fc1.weight[29, 0] = -10.0
            fc1.bias[29] = 1.0
        x = 0.2 + 0.8 * torch.rand(40, 4, generator=generator)
        x[0, 0] = 0.0
        with torch.no_grad():
            alive = (torch.relu(fc1(x)) > 0).any(0)
            expected = (fc1.weight[alive].clone(), fc1.bias[alive].clone(), fc2.weight[:, alive].clone(), fc2.bias.clone())
        new1, new2 = candidate(fc1, fc2, x)
        got = (new1.weight, new1.bias, new2.weight, new2.bias)
        return all(g.shape == e.shape and torch.equal(g, e) for g, e in zip(got, expected))
    """}),
    "check-raises-on-other-sizes": ({"pruning-check"}, {"pruning-check-answer": """
        generator = torch.Generator().manual_seed(0)
        fc1, fc2 = nn.Linear(4, 30), nn.Linear(30, 2)
        with torch.no_grad():
            for p in (*fc1.parameters(), *fc2.parameters()):
                p.copy_(torch.randn(p.shape, generator=generator))
            fc1.bias[:10] = -50.0
            fc1.weight[29] = 0.0
            fc1.weight[29, 0] = -10.0
            fc1.bias[29] = 1.0
        x = 0.2 + 0.8 * torch.rand(40, 4, generator=generator)
        x[0, 0] = 0.0
        before = [p.detach().clone() for p in (fc1.weight, fc1.bias, fc2.weight, fc2.bias)]
        with torch.no_grad():
            alive = (torch.relu(fc1(x)) > 0).any(0)
        expected = (before[0][alive], before[1][alive], before[2][:, alive], before[3])
        new1, new2 = candidate(fc1, fc2, x)
        got = (new1.weight, new1.bias, new2.weight, new2.bias)
        if not all(bool((g == e).all()) for g, e in zip(got, expected)):
            return False
        return all(torch.equal(p, q) for p, q in zip(before, (fc1.weight, fc1.bias, fc2.weight, fc2.bias)))
    """}),
    # low-rank: the shapes, and the best approximation
    "zeroes-instead-of-truncating": ({"low-rank"}, {"low-rank-answer": """
        U, S, Vh = torch.linalg.svd(W, full_matrices=False)
        kept = S.clone()
        kept[k:] = 0
        return U * kept, Vh
    """}),
    "singular-values-forgotten": ({"low-rank"}, {"low-rank-answer": """
        U, S, Vh = torch.linalg.svd(W, full_matrices=False)
        return U[:, :k], Vh[:k]
    """}),
    # conv-macs: the output size without the dilation
    "dilation-ignored": ({"conv-macs"}, {"conv-macs-answer": """
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        out_height = (height + 2 * padding - kh) // stride + 1
        out_width = (width + 2 * padding - kw) // stride + 1
        return out_channels * out_height * out_width * (in_channels // groups) * kh * kw
    """}),
    # rank-sweep: the prediction, and the measurement
    "singular-values-not-squared": ({"rank-sweep"}, {"rank-sweep-answer": """
        predicted_relative_error = {k: float(sigma[k:].sum() / sigma.sum()) for k in ranks}
    """}),
    "range-not-widened-to-zero": ({"int8-quantize"}, {"int8-quantize-answer": ("""
        s = (b - a) / 255
        return s, int(min(max(-round(a / s), 0), 255))
    """, """
        return torch.clamp(torch.round(x / s) + z, 0, 255).to(torch.int64)
    """, """
        return s * (q.to(torch.float64) - z)
    """)}),
    "one-point-read-as-one": ({"rank-sweep"}, {"rank-sweep-measure-answer": """
        accuracy_by_rank = {k: accuracy_at_rank(k) for k in ranks}
        smallest_good_rank = min(k for k in ranks if accuracy_by_rank[k] >= full_accuracy - 1)
    """}),
}

"""Exercise 08: other correct answers, and slips that each cost exactly the parts they break."""

ALTERNATIVES = {
    "index-lists-and-full-svd": {
        "prune-dead-answer": """
            with torch.no_grad():
                fires = torch.relu(fc1(x)).amax(dim=0) > 0
                keep = [i for i in range(fc1.out_features) if fires[i]] or [0]
                first = nn.Linear(fc1.in_features, len(keep)).to(device=fc1.weight.device, dtype=fc1.weight.dtype)
                second = nn.Linear(len(keep), fc2.out_features).to(device=fc2.weight.device, dtype=fc2.weight.dtype)
                first.weight[:] = fc1.weight[keep]
                first.bias[:] = fc1.bias[keep]
                second.weight[:] = fc2.weight[:, keep]
                second.bias[:] = fc2.bias
            return first, second
        """,
        "low-rank-answer": """
            if type(k) is not int or k < 1 or k > min(W.shape):
                raise ValueError("rank k=%r is not an integer between 1 and %d" % (k, min(W.shape)))
            U, S, Vh = torch.linalg.svd(W, full_matrices=True)
            A = U[:, :k] @ torch.diag(S[:k])
            B = Vh[:k, :]
            return A, B, float(torch.sqrt(torch.sum(S[k:] ** 2)))
        """,
        "conv-macs-answer": """
            import math
            size = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
            return int(math.prod(size) * (in_channels // groups) * out_channels * out_height * out_width)
        """,
        "rank-sweep-answer": """
            accuracy_by_rank = {}
            for k in ranks:
                accuracy_by_rank[k] = accuracy_at_rank(k)
            good = [k for k in ranks if full_accuracy - accuracy_by_rank[k] <= 0.01]
            smallest_good_rank = good[0]
        """,
    },
    "another-check": {
        "pruning-check-answer": """
            torch.manual_seed(5)
            for _ in range(3):
                fc1, fc2 = nn.Linear(2, 16).double(), nn.Linear(16, 3).double()
                with torch.no_grad():
                    fc1.bias[:5] = -100.0
                    fc1.weight[15] = torch.tensor([4.0, 0.0], dtype=torch.float64)
                    fc1.bias[15] = -3.9
                x = torch.rand(25, 2, dtype=torch.float64)
                x[3, 0] = 1.0
                copies = [t.clone() for t in (fc1.weight, fc1.bias, fc2.weight, fc2.bias)]
                try:
                    new1, new2 = candidate(fc1, fc2, x)
                except Exception:
                    return False
                with torch.no_grad():
                    alive = torch.relu(fc1(x)).gt(0).any(0)
                    wanted = [fc1.weight[alive], fc1.bias[alive], fc2.weight[:, alive], fc2.bias]
                    given = [new1.weight, new1.bias, new2.weight, new2.bias]
                    if not all(a.shape == b.shape and torch.equal(a, b) for a, b in zip(given, wanted)):
                        return False
                if not all(torch.equal(a, b) for a, b in zip(copies, (fc1.weight, fc1.bias, fc2.weight, fc2.bias))):
                    return False
            return True
        """,
    },
}

WRONG = {
    "second-bias-not-copied": ({"prune-dead"}, {"prune-dead-answer": """
        with torch.no_grad():
            alive = (torch.relu(fc1(x)) > 0).any(dim=0)
            if not alive.any():
                alive[0] = True
            keep = alive.nonzero().squeeze(1)
            new1 = nn.Linear(fc1.in_features, keep.numel(), dtype=fc1.weight.dtype, device=fc1.weight.device)
            new2 = nn.Linear(keep.numel(), fc2.out_features, dtype=fc2.weight.dtype, device=fc2.weight.device)
            new1.weight.copy_(fc1.weight[keep])
            new1.bias.copy_(fc1.bias[keep])
            new2.weight.copy_(fc2.weight[:, keep])
        return new1, new2
    """}),
    "check-trusts-the-originals": ({"pruning-check"}, {"pruning-check-answer": """
        generator = torch.Generator().manual_seed(0)
        fc1, fc2 = nn.Linear(4, 30).double(), nn.Linear(30, 2).double()
        with torch.no_grad():
            for p in (*fc1.parameters(), *fc2.parameters()):
                p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64))
            fc1.bias[:10] = -50.0
        x = torch.rand(40, 4, generator=generator, dtype=torch.float64)
        with torch.no_grad():
            alive = (torch.relu(fc1(x)) > 0).any(0)
            expected = (fc1.weight[alive].clone(), fc1.bias[alive].clone(), fc2.weight[:, alive].clone(), fc2.bias.clone())
        new1, new2 = candidate(fc1, fc2, x)
        got = (new1.weight, new1.bias, new2.weight, new2.bias)
        return all(g.shape == e.shape and torch.equal(g, e) for g, e in zip(got, expected))
    """}),
    "rank-larger-than-the-matrix": ({"low-rank"}, {"low-rank-answer": """
        U, S, Vh = torch.linalg.svd(W, full_matrices=False)
        return U[:, :k] * S[:k], Vh[:k], float(S[k:].pow(2).sum().sqrt())
    """}),
    "groups-ignored": ({"conv-macs"}, {"conv-macs-answer": """
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        return out_channels * out_height * out_width * in_channels * kh * kw
    """}),
}

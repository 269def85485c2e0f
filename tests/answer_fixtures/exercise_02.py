"""Exercise 02: other correct answers, and slips that each cost exactly the parts they break."""

ALTERNATIVES = {
    "torch-arithmetic": {
        "momentum-step-answer": """
            velocity = torch.mul(g, lr) if u is None else torch.add(torch.mul(u, gamma), g, alpha=lr)
            w.sub_(velocity)
            return velocity
        """,
        "adam-step-answer": """
            m.lerp_(g, 1 - beta1)
            v.lerp_(g * g, 1 - beta2)
            denominator = v.sqrt() / (1 - beta2 ** t) ** 0.5 + eps
            w.addcdiv_(m, denominator, value=-lr / (1 - beta1 ** t))
        """,
        "adam-check-answer": """
            w, reference = start(), start().clone().requires_grad_(True)
            m, v = torch.zeros(4, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)
            optimizer = torch.optim.Adam([reference], lr=0.05)
            worst = 0.0
            for t in range(30):
                candidate(w, gradient(w), m, v, t + 1, lr=0.05, beta1=0.9, beta2=0.999, eps=1e-8)
                reference.grad = gradient(reference.detach())
                optimizer.step()
                state = optimizer.state[reference]
                worst = max(worst, (w - reference.detach()).abs().max().item(), (m - state["exp_avg"]).abs().max().item(),
                            (v - state["exp_avg_sq"]).abs().max().item())
            return bool(worst <= 1e-10)
        """,
        "nesterov-limit-answer": """
            return (2 + 2 * gamma) / (lam + 2 * gamma * lam)
        """,
        "stability-prediction-answer": """
            predicted_gd, predicted_momentum, predicted_nesterov = etas[2], etas[5], etas[1]
        """,
        "stability-answer": ("""
            w = torch.tensor([-4.0, 1.0], requires_grad=True)
            optimizer = torch.optim.SGD([w], lr=lr, momentum=gamma, nesterov=nesterov)
            for _ in range(steps):
                w.grad = torch.stack([w[0], 50 * w[1]]).detach()
                optimizer.step()
            return (w[0] ** 2 + 50 * w[1] ** 2).item() / 2 < 33.0
        """, """
            stable = {(gamma, nesterov): [eta for eta in etas if stays_bounded(eta, gamma, nesterov)]
                      for gamma, nesterov in [(0.0, False), (0.9, False), (0.9, True)]}
            largest_stable_gd = stable[0.0, False][-1]
            largest_stable_momentum = stable[0.9, False][-1]
            largest_stable_nesterov = stable[0.9, True][-1]
        """),
    },
    "loops-and-lists": {
        "momentum-step-answer": """
            new_u = lr * g.clone()
            if u is not None:
                new_u = new_u + gamma * u
            with torch.no_grad():
                w.copy_(w - new_u)
            return new_u
        """,
        "adam-step-answer": """
            m.copy_(beta1 * m + (1 - beta1) * g)
            v.copy_(beta2 * v + (1 - beta2) * g ** 2)
            w.copy_(w - lr * (m / (1 - beta1 ** t)) / (torch.sqrt(v / (1 - beta2 ** t)) + eps))
        """,
        "nesterov-limit-answer": """
            # bisection on the spectral radius of the step's matrix acting on (w_t, b_{t-1})
            def radius(eta):
                M = torch.tensor([[1 - eta * lam * (1 + gamma), -eta * gamma ** 2], [lam, gamma]], dtype=torch.float64)
                return torch.linalg.eigvals(M).abs().max().item()
            low, high = 0.0, 4.0 / lam
            for _ in range(200):
                middle = (low + high) / 2
                if radius(middle) < 1:
                    low = middle
                else:
                    high = middle
            return low
        """,
        "stability-prediction-answer": """
            predicted_gd = predicted_momentum = predicted_nesterov = None
            for eta in etas:
                if eta < 2 / 50:
                    predicted_gd = eta
                if eta < 2 * 1.9 / 50:
                    predicted_momentum = eta
                if eta < 2 * 1.9 / 2.8 / 50:
                    predicted_nesterov = eta
        """,
        "stability-answer": ("""
            f = lambda point: 0.5 * (point[0].item() ** 2 + 50.0 * point[1].item() ** 2)
            w = torch.nn.Parameter(torch.tensor([-4.0, 1.0], dtype=torch.float64))
            optimizer = torch.optim.SGD([w], lr, momentum=gamma, nesterov=nesterov)
            first = f(w)
            for _ in range(steps):
                w.grad = torch.tensor([w[0].item(), 50.0 * w[1].item()], dtype=torch.float64)
                optimizer.step()
            return f(w) < first
        """, """
            largest_stable_gd = largest_stable_momentum = largest_stable_nesterov = None
            for eta in etas:
                if stays_bounded(eta, 0.0):
                    largest_stable_gd = eta
                if stays_bounded(eta, 0.9):
                    largest_stable_momentum = eta
                if stays_bounded(eta, 0.9, nesterov=True):
                    largest_stable_nesterov = eta
        """),
    },
}

WRONG = {
    "gradient-modified-in-place": ({"momentum-step"}, {"momentum-step-answer": """
        g.mul_(lr)
        u = g.clone() if u is None else gamma * u + g
        w -= u
        return u
    """}),
    "velocity-updated-in-place": ({"momentum-step"}, {"momentum-step-answer": """
        if u is None:
            u = lr * g
        else:
            u.mul_(gamma).add_(g, alpha=lr)
        w -= u
        return u
    """}),
    "weights-rebound-not-updated": ({"momentum-step"}, {"momentum-step-answer": """
        u = lr * g if u is None else gamma * u + lr * g
        w = w - u
        return u
    """}),
    "adam-without-bias-correction": ({"adam-step"}, {"adam-step-answer": """
        m.mul_(beta1).add_((1 - beta1) * g)
        v.mul_(beta2).add_((1 - beta2) * g * g)
        w -= lr * m / (v.sqrt() + eps)
    """}),
    "adam-moments-rebound": ({"adam-step"}, {"adam-step-answer": """
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        w -= lr * (m / (1 - beta1 ** t)) / ((v / (1 - beta2 ** t)).sqrt() + eps)
    """}),
    "adam-check-default-allclose": ({"adam-check"}, {"adam-check-answer": """
        w = start()
        m, v = torch.zeros_like(w), torch.zeros_like(w)
        reference = start().requires_grad_()
        optimizer = torch.optim.Adam([reference], lr=0.05)
        for t in range(1, 31):
            candidate(w, gradient(w), m, v, t, lr=0.05)
            reference.grad = gradient(reference.detach())
            optimizer.step()
            state = optimizer.state[reference]
            if not (torch.allclose(w, reference.detach()) and torch.allclose(m, state["exp_avg"])
                    and torch.allclose(v, state["exp_avg_sq"])):
                return False
        return True
    """}),
    "adam-check-final-step-only": ({"adam-check"}, {"adam-check-answer": """
        w = start()
        m, v = torch.zeros_like(w), torch.zeros_like(w)
        reference = start().requires_grad_()
        optimizer = torch.optim.Adam([reference], lr=0.05)
        for t in range(1, 31):
            candidate(w, gradient(w), m, v, t, lr=0.05)
            reference.grad = gradient(reference.detach())
            optimizer.step()
        state = optimizer.state[reference]
        return all(torch.allclose(mine, theirs, rtol=0, atol=1e-10) for mine, theirs in
                   ((w, reference.detach()), (m, state["exp_avg"]), (v, state["exp_avg_sq"])))
    """}),
    "adam-check-parameters-only": ({"adam-check"}, {"adam-check-answer": """
        w = start()
        m, v = torch.zeros_like(w), torch.zeros_like(w)
        reference = start().requires_grad_()
        optimizer = torch.optim.Adam([reference], lr=0.05)
        for t in range(1, 31):
            candidate(w, gradient(w), m, v, t, lr=0.05)
            reference.grad = gradient(reference.detach())
            optimizer.step()
            if not torch.allclose(w, reference.detach(), rtol=0, atol=1e-10):
                return False
        return True
    """}),
    "nesterov-limit-of-the-heavy-ball": ({"nesterov-limit"}, {"nesterov-limit-answer": """
        return 2.0 * (1.0 + gamma) / lam
    """}),
    "stability-without-the-curvature": ({"stability"}, {"stability-answer": ("""
        w = torch.tensor([-4.0, 1.0], dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.SGD([w], lr=lr, momentum=gamma, nesterov=nesterov)
        for _ in range(steps):
            w.grad = w.detach().clone()
            optimizer.step()
        return bool(0.5 * (w[0] ** 2 + 50.0 * w[1] ** 2) < 33.0)
    """, """
        largest_stable_gd = max(eta for eta in etas if stays_bounded(eta, 0.0))
        largest_stable_momentum = max(eta for eta in etas if stays_bounded(eta, 0.9))
        largest_stable_nesterov = max(eta for eta in etas if stays_bounded(eta, 0.9, nesterov=True))
    """)}),
    "momentum-predicted-no-more-stable": ({"stability"}, {"stability-prediction-answer": """
        predicted_gd = max(eta for eta in etas if eta * 50 < 2)
        predicted_momentum = predicted_gd
        predicted_nesterov = max(eta for eta in etas if eta * 50 < 2 * (1 + 0.9) / (1 + 2 * 0.9))
    """}),
}

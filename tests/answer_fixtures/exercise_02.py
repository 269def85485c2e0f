"""Exercise 02: other correct answers, and slips that each cost exactly the parts they break."""

ALTERNATIVES = {
    "torch-arithmetic": {
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
        "adamax-step-answer": """
            grad = g.add(w, alpha=weight_decay)
            m.lerp_(grad, 1 - beta1)
            torch.maximum(u.mul_(beta2), grad.abs().add_(eps), out=u)
            w.addcdiv_(m, u, value=-lr / (1 - beta1 ** t))
        """,
        "nesterov-limit-answer": """
            return (2 + 2 * gamma) / (lam + 2 * gamma * lam)
        """,
        "warmup-prediction-answer": """
            warmup_steps, total_steps, peak = 16, 80, 0.8
            predicted_lrs = []
            for k in check_steps:
                if k < warmup_steps:
                    predicted_lrs.append(peak / 8 + (peak - peak / 8) * k / warmup_steps)
                else:
                    phase = (k - warmup_steps) / (total_steps - warmup_steps)
                    predicted_lrs.append(peak / 2 * (1 + math.cos(math.pi * phase)))
            predicted_higher_peak, predicted_lower_heldout = "no warm-up", "no warm-up"
        """,
        "warmup-answer": """
            optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(3))], lr=0.8)
            scheduler = warmup_cosine(optimizer, 16, 80)
            measured_lrs = []
            for step in range(max(check_steps) + 1):
                if step in check_steps:
                    measured_lrs.append(scheduler.get_last_lr()[0])
                optimizer.step()
                scheduler.step()
            without, with_warmup = train_large_batch(0), train_large_batch(steps_per_epoch * 2)
            peak_loss = {"no warm-up": max(without[0][:steps_per_epoch]), "warm-up": max(with_warmup[0][:steps_per_epoch])}
            heldout_loss = {"no warm-up": without[1], "warm-up": with_warmup[1]}
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
        "adam-step-answer": """
            m.copy_(beta1 * m + (1 - beta1) * g)
            v.copy_(beta2 * v + (1 - beta2) * g ** 2)
            w.copy_(w - lr * (m / (1 - beta1 ** t)) / (torch.sqrt(v / (1 - beta2 ** t)) + eps))
        """,
        "adamax-step-answer": """
            # one coordinate at a time, through flat views of the caller's tensors
            flat_w, flat_g, flat_m, flat_u = (x.view(-1) for x in (w, g, m, u))
            for i in range(flat_w.numel()):
                grad = flat_g[i].item() + weight_decay * flat_w[i].item()
                flat_m[i] = beta1 * flat_m[i].item() + (1 - beta1) * grad
                flat_u[i] = max(beta2 * flat_u[i].item(), abs(grad) + eps)
                flat_w[i] = flat_w[i].item() - lr / (1 - beta1 ** t) * flat_m[i].item() / flat_u[i].item()
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
        "warmup-prediction-answer": """
            predicted_lrs = [0.1 + 0.7 * k / 16 if k <= 16 else 0.4 + 0.4 * math.cos(math.pi * (k - 16) / 64) for k in check_steps]
            predicted_higher_peak = "no warm-up"
            predicted_lower_heldout = "warm-up"
        """,
        "warmup-answer": """
            measured_lrs = []
            probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=peak_lr)
            schedule = warmup_cosine(probe, 16, 80)
            for step in range(80):
                if step in check_steps:
                    measured_lrs.append(probe.param_groups[0]["lr"])
                probe.step()
                schedule.step()
            peak_loss, heldout_loss = {}, {}
            for name in ["warm-up", "no warm-up"]:
                losses, final = train_large_batch(2 * steps_per_epoch if name == "warm-up" else 0)
                peak_loss[name] = max(losses[:steps_per_epoch])
                heldout_loss[name] = final
        """,
    },
}

WRONG = {
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
    "adamax-eps-added-to-the-denominator": ({"adamax-step"}, {"adamax-step-answer": """
        grad = g + weight_decay * w
        m.mul_(beta1).add_((1 - beta1) * grad)
        u.copy_(torch.maximum(beta2 * u, grad.abs()))
        w -= lr / (1 - beta1 ** t) * m / (u + eps)
    """}),
    "adamax-u-bias-corrected": ({"adamax-step"}, {"adamax-step-answer": """
        grad = g + weight_decay * w
        m.mul_(beta1).add_((1 - beta1) * grad)
        u.copy_(torch.maximum(beta2 * u, grad.abs() + eps))
        w -= lr / (1 - beta1 ** t) * m / (u / (1 - beta2 ** t))
    """}),
    "adamax-steps-counted-from-zero": ({"adamax-step"}, {"adamax-step-answer": """
        grad = g + weight_decay * w
        m.mul_(beta1).add_((1 - beta1) * grad)
        u.copy_(torch.maximum(beta2 * u, grad.abs() + eps))
        w -= lr / (1 - beta1 ** (t + 1)) * m / u
    """}),
    "adamax-moments-rebound": ({"adamax-step"}, {"adamax-step-answer": """
        grad = g + weight_decay * w
        m = beta1 * m + (1 - beta1) * grad
        u = torch.maximum(beta2 * u, grad.abs() + eps)
        w -= lr / (1 - beta1 ** t) * m / u
    """}),
    "adamax-weight-decay-added-to-g": ({"adamax-step"}, {"adamax-step-answer": """
        g.add_(w, alpha=weight_decay)
        m.mul_(beta1).add_((1 - beta1) * g)
        u.copy_(torch.maximum(beta2 * u, g.abs() + eps))
        w -= lr / (1 - beta1 ** t) * m / u
    """}),
    "adamax-decoupled-weight-decay": ({"adamax-step"}, {"adamax-step-answer": """
        w.mul_(1 - lr * weight_decay)
        m.mul_(beta1).add_((1 - beta1) * g)
        u.copy_(torch.maximum(beta2 * u, g.abs() + eps))
        w -= lr / (1 - beta1 ** t) * m / u
    """}),
    "adamax-loop-over-the-first-dimension": ({"adamax-step"}, {"adamax-step-answer": """
        for i in range(len(w)):
            grad = g[i] + weight_decay * w[i]
            m[i] = beta1 * m[i] + (1 - beta1) * grad
            u[i] = max(beta2 * u[i], abs(grad) + eps)
            w[i] -= lr / (1 - beta1 ** t) * m[i] / u[i]
    """}),
    "warmup-reaching-the-peak-a-step-early": ({"warmup"}, {"warmup-prediction-answer": """
        predicted_lrs = [0.8 * (1 / 8 + (1 - 1 / 8) * k / 15) if k < 16 else 0.8 * (1 + math.cos(math.pi * (k - 16) / 64)) / 2
                         for k in check_steps]
        predicted_higher_peak = "no warm-up"
        predicted_lower_heldout = "warm-up"
    """}),
    "warmup-cosine-counted-from-the-first-step": ({"warmup"}, {"warmup-prediction-answer": """
        predicted_lrs = [0.8 * (1 / 8 + (1 - 1 / 8) * k / 16) if k < 16 else 0.8 * (1 + math.cos(math.pi * k / 80)) / 2
                         for k in check_steps]
        predicted_higher_peak = "no warm-up"
        predicted_lower_heldout = "warm-up"
    """}),
    "warmup-higher-peak-predicted-with-warm-up": ({"warmup"}, {"warmup-prediction-answer": """
        predicted_lrs = [0.8 * (1 / 8 + (1 - 1 / 8) * k / 16) if k < 16 else 0.8 * (1 + math.cos(math.pi * (k - 16) / 64)) / 2
                         for k in check_steps]
        predicted_higher_peak = "warm-up"
        predicted_lower_heldout = "no warm-up"
    """}),
    "warmup-last-training-loss-as-heldout": ({"warmup"}, {"warmup-answer": """
        probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=peak_lr)
        schedule = warmup_cosine(probe, 16, 80)
        lrs = []
        for _ in range(80):
            lrs.append(probe.param_groups[0]["lr"])
            probe.step()
            schedule.step()
        measured_lrs = [lrs[k] for k in check_steps]
        runs = {"no warm-up": train_large_batch(0), "warm-up": train_large_batch(2 * steps_per_epoch)}
        peak_loss = {name: max(losses[:steps_per_epoch]) for name, (losses, _) in runs.items()}
        heldout_loss = {name: losses[-1] for name, (losses, _) in runs.items()}
    """}),
}

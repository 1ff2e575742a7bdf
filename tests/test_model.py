"""core.model: shapes, causality, head semantics, config validation. No data, no training."""

import pytest
import torch

from core.model import HEADS, DigitSumModel, ModelConfig, final_sums, resolve_device


@pytest.fixture(params=HEADS)
def model(request):
    torch.manual_seed(0)
    return DigitSumModel(ModelConfig(head=request.param, widths=[8, 16, 16])).eval()


def test_cnn_maps_images_to_ten_logits(model):
    logits = model.cnn(torch.rand(5, 1, 28, 28))
    assert logits.shape == (5, 10) and logits.dtype == torch.float32
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        model.cnn(torch.rand(5, 28, 28))


def test_head_forward_shape_dtype_and_final_sum(model):
    logits = torch.randn(4, 7, 10)
    lengths = torch.tensor([7, 1, 3, 5])
    with torch.no_grad():
        running = model.head_forward(logits, lengths)
    assert running.shape == (4, 7) and running.dtype == torch.float64
    assert torch.equal(final_sums(running, lengths), running[torch.arange(4), lengths - 1])
    with pytest.raises(ValueError, match=r"\(N, L, 10\)"):
        model.head_forward(torch.randn(4, 7), lengths)


def test_heads_are_causal(model):
    """Padding after a sequence's end must not change its running sum (no packing needed)."""
    torch.manual_seed(1)
    a = torch.randn(2, 6, 10)
    b = a.clone()
    b[:, 3:] = torch.randn(2, 3, 10) * 5  # different "padding" after position 3
    lengths = torch.tensor([3, 3])
    with torch.no_grad():
        ra, rb = model.head_forward(a, lengths), model.head_forward(b, lengths)
    assert torch.allclose(ra[:, :3], rb[:, :3])
    assert not torch.allclose(ra[:, 3:], rb[:, 3:]) or model.config.head == "argmax-sum"


def test_untrained_lstm_head_is_the_argmax_sum_and_counts_whole_digits():
    """The readout starts at zero, so the untrained (hard) head adds the CNN's argmax digits: exact integers."""
    model = DigitSumModel(ModelConfig(head="lstm")).eval()
    logits = torch.randn(3, 5, 10) * 3
    with torch.no_grad():
        running = model.head_forward(logits, torch.tensor([5, 5, 5]))
    assert torch.equal(running, logits.argmax(-1).double().cumsum(1))


def test_hard_lstm_head_passes_gradients_straight_through():
    model = DigitSumModel(ModelConfig(head="lstm"))
    logits = torch.randn(2, 4, 10)
    running = model.head_forward(logits, torch.tensor([4, 4]))
    assert torch.equal(running, running.round())  # integer forward values ...
    running[:, -1].sum().backward()
    assert model.head.readout.weight.grad.abs().sum() > 0  # ... yet the head still learns


def test_soft_lstm_head_adds_expected_digit_values():
    model = DigitSumModel(ModelConfig(head="lstm", hard=False)).eval()
    logits = torch.randn(2, 3, 10)
    with torch.no_grad():
        running = model.head_forward(logits, torch.tensor([3, 3]))
        probs = (model.head.sharpness * logits.log_softmax(-1)).softmax(-1)
    assert torch.allclose(running, (probs * torch.arange(10.0)).sum(-1).double().cumsum(1), atol=1e-4)


def test_argmax_sum_head_sums_argmax_digits():
    model = DigitSumModel(ModelConfig(head="argmax-sum")).eval()
    digits = torch.tensor([[3, 9, 0, 4], [7, 7, 1, 2]])
    logits = torch.nn.functional.one_hot(digits, 10).float() * 10
    running = model.head_forward(logits, torch.tensor([4, 2]))
    assert running[0].tolist() == [3, 12, 12, 16]
    assert final_sums(running, torch.tensor([4, 2])).tolist() == [16, 14]


def test_ensemble_averages_member_calibrated_probabilities():
    torch.manual_seed(0)
    model = DigitSumModel(ModelConfig(members=3, widths=[4, 8, 8])).eval()
    model.cnn.member_temperature.copy_(torch.tensor([0.5, 1.0, 2.0]))
    x = torch.rand(4, 1, 28, 28)
    out = model.cnn(x)
    members = model.cnn.member_logits(x)
    assert members.shape == (3, 4, 10)
    by_hand = (members / torch.tensor([0.5, 1.0, 2.0]).view(3, 1, 1)).softmax(-1).mean(0)
    assert torch.allclose(out.exp(), by_hand, atol=1e-6)  # out is the log of the mean probability
    assert not torch.allclose(out, members.log_softmax(-1).mean(0), atol=1e-3)  # not the mean log-probability


def test_full_forward_runs_cnn_then_head():
    model = DigitSumModel(ModelConfig(widths=[4, 8, 8])).eval()
    images = torch.rand(2, 3, 28, 28)
    with torch.no_grad():
        sums, running, logits = model(images, torch.tensor([3, 2]))
    assert sums.shape == (2,) and running.shape == (2, 3) and logits.shape == (2, 3, 10)


def test_model_config_validation_and_round_trip():
    cfg = ModelConfig(head="deepsets", widths=[8, 16, 32], members=2)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="head"):
        ModelConfig(head="transformer")
    with pytest.raises(ValueError, match="widths"):
        ModelConfig(widths=[8, 16])
    with pytest.raises(ValueError, match="unknown"):
        ModelConfig.from_dict({**cfg.to_dict(), "colour": "blue"})


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="not available"):
            resolve_device("cuda")


def test_no_head_returns_float64_on_a_device_without_it(model, monkeypatch):
    # MPS cannot hold float64. Pretend the CPU is such a device: every head must then sum in float32,
    # and gradients still reach the CNN's logits.
    from core.model import heads

    logits = torch.randn(2, 5, 10, requires_grad=True)
    assert model.head_forward(logits, torch.tensor([5, 3])).dtype == torch.float64
    monkeypatch.setattr(heads, "FLOAT64_DEVICES", ("cuda",))
    running = model.head_forward(logits, torch.tensor([5, 3]))
    assert running.dtype == torch.float32
    if running.requires_grad:  # argmax-sum has nothing to differentiate
        running.sum().backward()
        assert logits.grad is not None
    assert heads.sum_dtype(torch.device("mps")) == torch.float32


def test_fused_cnn_gives_the_same_logits_without_batchnorm(model):
    import copy

    from core.model.cnn import CNNEnsemble

    cnn = model.cnn.eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so a wrong fold would show
        for m in cnn.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2.0), m.weight.uniform_(0.5, 1.5)
    x = torch.rand(8, 1, 28, 28)
    fused = copy.deepcopy(cnn).fuse_for_inference()
    assert isinstance(fused, CNNEnsemble)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    with torch.no_grad():
        assert torch.allclose(fused(x), cnn(x), atol=1e-4) and torch.allclose(fused.features(x), cnn.features(x), atol=1e-4)
        assert torch.equal(copy.deepcopy(fused).fuse_for_inference()(x), fused(x))  # idempotent

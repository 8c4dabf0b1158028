"""DSIFuse (Sensors 26(9) 2577, 2026; seed 004): semantic-guided multi-level collaborative fusion.

Encoders (Sec. 3.1): one ResNet per modality (visible RGB, infrared). After each of the five blocks (stem,
layer1..layer4) the cross-modal feature calibration block (CFC, eqs. 1-5) recalibrates each modality with the
other along channels (pooled descriptors, MLP, sigmoid) and space (1 x 1 convs, sigmoid), residually with
λ_C = λ_S = 0.5, and the calibrated maps go on to the next block. The concatenations C^n feed the global
semantic decoder.

Semantic priors: the deepest calibrated feature of each modality is decoded into coarse class logits S_V, S_R
(1/32); C^1..C^5 are decoded into the global map S_G (1/8). Priors enter the network as softmax probabilities.

Three-level interaction (Sec. 3.3):

* level 1, stage 3, cross-modal fusion block (CFB): cross-attention with the prior S_I as query and F_I^3 as
  key/value (eqs. 6-7), then FiLM modality integration conditioned on the other modality's attended map
  (eq. 8): ``M_I^1 = (β + 1) ⊙ m_I^1 + γ``, ``F~_I^3 = M_I^1 + F_I^3``;
* levels 2-3, stages 4-5, intra-modal interaction block (IMB): a semantic-guided path (S_I queries F_I^n)
  and a visual-recovery path (F_I^n queries that result), concatenated, projected, and FiLM-modulated by S_I
  (eqs. 9-10), ``F~_I^n = M_I^t + F_I^n``.

Feedback (Sec. 3.1: "M_I^t is residually added to the corresponding modality-specific encoder feature";
Sec. 3.3.2: "fed back into the encoder layer"; Fig. 1(c), a hybrid of direct and feedback fusion). The priors
come from the deepest features, so the encoder runs once to give them; with ``feedback="encoder"`` (the
default) the refinement then flows back through the encoder: F~^3 = F^3 + M^1 goes through encoder block 4 and
its CFC again, that output is refined by level 2 (F~^4 = F^4' + M^2), goes through block 5 and its CFC again,
and is refined by level 3. The decoder reads F^1, F^2 and the three refined maps; the priors and S_G stay those
of the first pass (they are what the refinement is conditioned on and what L_sem supervises). Blocks 4 and 5 run
twice, with the same weights. ``feedback="decoder"`` adds the refinements to the first pass's maps without
re-running blocks 4-5, so the refined stage-3 map never reaches the deeper encoder features; that is what
taskfuse did before this option: weights trained then name no ``feedback`` and run as trained with
``load_model(path, feedback="decoder")``.

Decoder (Sec. 3.4): per stage the two refined maps are concatenated and projected; a top-down decoder
(upsample, concatenate the next skip, conv) runs from stage 5 to stage 1. The semantic compensation block
(SCB) resizes M^1, M^2 and S_G to decoder layers 5 and 4, applies a 3 x 3 conv to each, concatenates, applies
channel attention and adds the result. The output head upsamples to full resolution, sees the source images
there (the first encoder block already halves the resolution) and gives RGB through ``(tanh + 1) / 2``.

The paper gives no depth or widths (and no code); chosen here: ResNet-18, CFC MLP reduction 4, single-head
attention (eq. 7) at the stage width, decoder widths (32, 32, 64, 64, 128) for stages 1-5. The encoders keep
torchvision's ResNet names: ``backbone_weights`` loads a local safetensors ImageNet ResNet into both
(``taskfuse.nn.pretrained.load_backbone``), the infrared encoder's first convolution summed over RGB.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from taskfuse.errors import TaskfuseError
from taskfuse.models.base import FusionModel, FusionOutput
from taskfuse.nn.attention import ChannelAttention, max_over
from taskfuse.nn.conv import ConvBNAct
from taskfuse.nn.cross_attention import CrossAttention
from taskfuse.nn.film import FiLM
from taskfuse.nn.pretrained import load_backbone
from taskfuse.nn.resample import resize
from taskfuse.nn.resnet import ResNet


class CrossModalCalibration(nn.Module):
    """CFC (eqs. 1-5): ``F_V^out = F_V + λ_C W_R^C ⊗ F_R + λ_S W_R^S ⊗ F_R`` and symmetrically for F_R.

    Channel weights: sigmoid(MLP([GAP(F_V), GAP(F_R), GMP(F_V), GMP(F_R)])) split in two (eq. 1); spatial
    weights: sigmoid(1 x 1 conv(ReLU(1 x 1 conv([F_V, F_R])))) split in two maps (eqs. 3-4).
    """

    def __init__(self, channels: int, reduction: int = 4, lambda_c: float = 0.5, lambda_s: float = 0.5) -> None:
        super().__init__()
        hidden = max(4 * channels // reduction, 8)
        self.channel = nn.Sequential(
            nn.Linear(4 * channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 2 * channels), nn.Sigmoid()
        )
        self.spatial = nn.Sequential(
            nn.Conv2d(2 * channels, max(channels // reduction, 8), 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(max(channels // reduction, 8), 2, 1),
            nn.Sigmoid(),
        )
        self.lambda_c, self.lambda_s = lambda_c, lambda_s

    def forward(self, v: Tensor, r: Tensor) -> tuple[Tensor, Tensor]:
        b, c = v.shape[:2]
        y = torch.cat((v.mean((2, 3)), r.mean((2, 3)), max_over(v, (2, 3)), max_over(r, (2, 3))), 1)
        wv_c, wr_c = self.channel(y).view(b, 2 * c, 1, 1).chunk(2, dim=1)
        wv_s, wr_s = self.spatial(torch.cat((v, r), 1)).chunk(2, dim=1)
        v_out = v + self.lambda_c * wr_c * r + self.lambda_s * wr_s * r
        r_out = r + self.lambda_c * wv_c * v + self.lambda_s * wv_s * v
        return v_out, r_out


class CrossModalFusionBlock(nn.Module):
    """CFB (level 1, eqs. 6-8): ``m_I = Attn(Q = S_I, K = V = F_I)``; FiLM of each by the other modality's m."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.attn_v = CrossAttention(num_classes, channels, channels)
        self.attn_r = CrossAttention(num_classes, channels, channels)
        self.film_v = FiLM(channels, channels)
        self.film_r = FiLM(channels, channels)

    def forward(self, fv: Tensor, fr: Tensor, sv: Tensor, sr: Tensor) -> tuple[Tensor, Tensor]:
        mv = self.attn_v(resize(sv, fv.shape[-2:]), fv)
        mr = self.attn_r(resize(sr, fr.shape[-2:]), fr)
        return self.film_v(mv, mr), self.film_r(mr, mv)


class IntraModalInteraction(nn.Module):
    """IMB path for one modality (levels 2-3, eqs. 9-10): ``m = Attn(S_I; F)``, ``c = Attn(F; m)``,
    ``g = conv1x1([m, c])``, ``M = (β(S_I) + 1) ⊙ g + γ(S_I)``."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.semantic = CrossAttention(num_classes, channels, channels)
        self.visual = CrossAttention(channels, channels, channels)
        self.merge = nn.Conv2d(2 * channels, channels, 1)
        self.film = FiLM(channels, num_classes)

    def forward(self, f: Tensor, prior: Tensor) -> Tensor:
        s = resize(prior, f.shape[-2:])
        m = self.semantic(s, f)
        g = self.merge(torch.cat((m, self.visual(f, m)), 1))
        return self.film(g, s)


class SemanticCompensation(nn.Module):
    """SCB (Sec. 3.4): resize each input to the decoder map, 3 x 3 conv each, concatenate, channel attention,
    1 x 1 projection to the decoder width; the result ``A_f`` is added to the decoder map."""

    def __init__(self, in_channels: tuple[int, ...], channels: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(ConvBNAct(c, channels, 3) for c in in_channels)
        cat = channels * len(in_channels)
        self.attention = ChannelAttention(cat)
        self.project = nn.Conv2d(cat, channels, 1)

    def forward(self, d: Tensor, inputs: list[Tensor]) -> Tensor:
        x = torch.cat([conv(resize(t, d.shape[-2:])) for conv, t in zip(self.convs, inputs, strict=True)], 1)
        return d + self.project(x * self.attention(x))


FEEDBACK = ("encoder", "decoder")
"""Where the interaction maps M^t go: back through encoder blocks 4-5 (the paper), or to the decoder only."""


class DSIFuse(FusionModel):
    """DSIFuse; ``aux`` holds the prior logits ``prior_vi``, ``prior_ir`` (1/32) and ``prior_global`` (1/8).
    ``feedback`` chooses where the refined features go (module docstring).
    ``backbone_weights``: optional local ``.safetensors`` ImageNet ResNet of depth ``depth`` for both encoders."""

    input_mode = "rgb"
    output_mode = "rgb"
    stride = 32

    def __init__(
        self,
        depth: int = 18,
        num_classes: int = 9,
        decoder_channels: tuple[int, ...] | list[int] = (32, 32, 64, 64, 128),
        cfc_reduction: int = 4,
        lambda_c: float = 0.5,
        lambda_s: float = 0.5,
        backbone_weights: str | None = None,
        feedback: str = "encoder",
    ) -> None:
        super().__init__()
        if feedback not in FEEDBACK:
            raise TaskfuseError(f"dsifuse: feedback {feedback!r} is not one of {', '.join(FEEDBACK)}")
        self.feedback = feedback
        dec = tuple(int(c) for c in decoder_channels)
        if len(dec) != 5:
            raise TaskfuseError(f"dsifuse: decoder_channels needs five widths (stages 1-5), got {decoder_channels}")
        if num_classes < 2:
            raise TaskfuseError(f"dsifuse: num_classes must be at least 2, got {num_classes}")
        k = num_classes
        self.encoder_vi = ResNet(depth, in_chans=3)
        self.encoder_ir = ResNet(depth, in_chans=1)
        if backbone_weights:
            for encoder in (self.encoder_vi, self.encoder_ir):
                load_backbone(encoder, backbone_weights, "resnet")
        widths = (64, *self.encoder_vi.channels)
        self.cfc = nn.ModuleList(CrossModalCalibration(c, cfc_reduction, lambda_c, lambda_s) for c in widths)
        self.prior_vi = nn.Sequential(ConvBNAct(widths[4], 64, 3), nn.Conv2d(64, k, 1))
        self.prior_ir = nn.Sequential(ConvBNAct(widths[4], 64, 3), nn.Conv2d(64, k, 1))
        self.global_in = nn.ModuleList(ConvBNAct(2 * c, 64, 1) for c in widths)
        self.global_head = nn.Sequential(ConvBNAct(64, 64, 3), nn.Conv2d(64, k, 1))
        self.cfb = CrossModalFusionBlock(widths[2], k)
        self.imb_vi = nn.ModuleList(IntraModalInteraction(widths[n], k) for n in (3, 4))
        self.imb_ir = nn.ModuleList(IntraModalInteraction(widths[n], k) for n in (3, 4))
        self.skips = nn.ModuleList(ConvBNAct(2 * c, d, 1) for c, d in zip(widths, dec, strict=True))
        self.ups = nn.ModuleList(ConvBNAct(dec[n + 1] + dec[n], dec[n], 3) for n in range(4))
        scb_in = (2 * widths[2], 2 * widths[3], k)
        self.scb = nn.ModuleList(SemanticCompensation(scb_in, dec[n]) for n in (3, 4))
        self.head = nn.Sequential(ConvBNAct(dec[0] + 4, dec[0], 3), nn.Conv2d(dec[0], 3, 3, padding=1))

    def encode(self, ir: Tensor, vi: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """The calibrated features F_V^n, F_R^n of blocks 1-5 (stem at 1/2, layer1..layer4 at 1/4..1/32),
        with the CFC after every block."""
        fv, fr = [], []
        x_v, x_r = vi, ir
        for n in range(len(self.cfc)):
            x_v, x_r = self.stage(n, x_v, x_r)
            fv.append(x_v)
            fr.append(x_r)
        return fv, fr

    def stage(self, n: int, x_v: Tensor, x_r: Tensor) -> tuple[Tensor, Tensor]:
        """Encoder block ``n`` (0-based) of both modalities followed by its CFC."""
        return self.cfc[n](self._block(self.encoder_vi, n, x_v), self._block(self.encoder_ir, n, x_r))

    @staticmethod
    def _block(encoder: ResNet, n: int, x: Tensor) -> Tensor:
        if n == 0:
            return encoder.relu(encoder.bn1(encoder.conv1(x)))
        if n == 1:
            x = encoder.maxpool(x)
        return encoder.stages()[n - 1](x)

    def fuse(self, ir: Tensor, vi: Tensor) -> FusionOutput:
        fv, fr = self.encode(ir, vi)
        logits_v, logits_r = self.prior_vi(fv[4]), self.prior_ir(fr[4])
        size_g = fv[2].shape[-2:]
        g = sum(resize(proj(torch.cat((a, b), 1)), size_g) for proj, a, b in zip(self.global_in, fv, fr, strict=True))
        logits_g = self.global_head(g)
        sv, sr, sg = logits_v.softmax(1), logits_r.softmax(1), logits_g.softmax(1)

        mv1, mr1 = self.cfb(fv[2], fr[2], sv, sr)
        m = [torch.cat((mv1, mr1), 1)]
        fv[2], fr[2] = fv[2] + mv1, fr[2] + mr1
        for t, n in enumerate((3, 4)):
            if self.feedback == "encoder":
                fv[n], fr[n] = self.stage(n, fv[n - 1], fr[n - 1])
            mv, mr = self.imb_vi[t](fv[n], sv), self.imb_ir[t](fr[n], sr)
            m.append(torch.cat((mv, mr), 1))
            fv[n], fr[n] = fv[n] + mv, fr[n] + mr

        skips = [skip(torch.cat((a, b), 1)) for skip, a, b in zip(self.skips, fv, fr, strict=True)]
        d = self.scb[1](skips[4], [m[0], m[1], sg])
        for n in (3, 2, 1, 0):
            d = self.ups[n](torch.cat((resize(d, skips[n].shape[-2:]), skips[n]), 1))
            if n == 3:
                d = self.scb[0](d, [m[0], m[1], sg])
        d = resize(d, ir.shape[-2:])
        fused = (torch.tanh(self.head(torch.cat((d, ir, vi), 1))) + 1) / 2
        return FusionOutput(fused, {"prior_vi": logits_v, "prior_ir": logits_r, "prior_global": logits_g})

"""Stable Video Diffusion fine-tuned with motionpipe's conditions: a local diffusers SVD folder (``unet/``,
``vae/``, ``image_encoder/``) whose UNetSpatioTemporalConditionModel learns motion control.

- MotionStone's scores: the object and camera scores through two MLPs (``MotionScoreEmbedding``), added to the
  UNet's timestep embedding by a forward hook on its ``time_embedding``.
- MotionPro's conditions: the motion mask and the region trajectories with their mask, at the latent grid,
  appended to the UNet's input channels; the new input weights start at zero (ControlNet's trick), so step 0
  is the pretrained model.
- MotiF's focal loss on SVD's own objective: EDM preconditioning with v-prediction and log-normal training
  noise levels (P_mean 0.7, P_std 1.6), the denoised latents' error weighted by (1 + sigma^2) / sigma^2, plus
  lambda x the same error weighted by the squared motion heatmap.
- LoRA (peft) on the attention projections, or full fine-tuning of the UNet.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from motionpipe.stages.trainer.conditioning import MotionScoreEmbedding

CONDITION_CHANNELS = 4  # motion mask, region trajectories (x, y), region mask
TRAJECTORY_SCALE = 0.1  # px -> roughly unit range, as MotionEncoder scales them
ADDED_TIME_IDS = (6.0, 127.0, 0.02)  # fps - 1, motion bucket id, noise augmentation: SVD's defaults
NOISE_AUGMENTATION = 0.02
EDM_P_MEAN, EDM_P_STD = 0.7, 1.6
CLIP_SIZE = 224
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


@dataclass
class SvdParts:
    """What fine-tuning needs of an SVD folder: the UNet (trained), the VAE and the CLIP image encoder (frozen)."""

    unet: nn.Module
    vae: nn.Module
    image_encoder: nn.Module


def load_svd(model_dir: str | Path) -> SvdParts:
    """The folder's UNet, VAE and image encoder, from local files only (no hub access)."""
    import diffusers
    import transformers
    from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
    from transformers import CLIPVisionModelWithProjection

    diffusers.utils.logging.disable_progress_bar()  # library code draws no progress bars (the CLI does)
    transformers.utils.logging.disable_progress_bar()
    folder = Path(model_dir)
    configs = (f"{part}/config.json" for part in ("unet", "vae", "image_encoder"))
    missing = [config for config in configs if not (folder / config).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} is not a diffusers SVD folder: no {', '.join(missing)}")
    vae = AutoencoderKLTemporalDecoder.from_pretrained(folder / "vae", local_files_only=True)
    encoder = CLIPVisionModelWithProjection.from_pretrained(folder / "image_encoder", local_files_only=True)
    unet = UNetSpatioTemporalConditionModel.from_pretrained(folder / "unet", local_files_only=True)
    return SvdParts(unet, vae.requires_grad_(False).eval(), encoder.requires_grad_(False).eval())


class MotionSvd(nn.Module):
    """SVD's UNet with the motion scores in its timestep embedding and the motion conditions in its input."""

    def __init__(self, unet: nn.Module, lora_rank: int = 0) -> None:
        super().__init__()
        widen_input(unet, CONDITION_CHANNELS)
        if lora_rank:
            from peft import LoraConfig, inject_adapter_in_model

            unet.requires_grad_(False)
            inject_adapter_in_model(LoraConfig(r=lora_rank, lora_alpha=lora_rank, target_modules=LORA_TARGETS), unet)
            unet.conv_in.requires_grad_(True)  # its new condition channels must learn
        self.unet = unet
        self.scores = MotionScoreEmbedding(unet.time_embedding.linear_2.out_features)
        self._batch_scores: torch.Tensor | None = None
        unet.time_embedding.register_forward_hook(self._add_scores)

    def _add_scores(self, module: nn.Module, inputs: tuple, embedding: torch.Tensor) -> torch.Tensor:
        return self.scores(embedding, self._batch_scores)

    def forward(
        self,
        latents_in: torch.Tensor,
        image_latents: torch.Tensor,
        conditions: torch.Tensor,
        noise_levels: torch.Tensor,
        image_embeddings: torch.Tensor,
        scores: torch.Tensor,
    ) -> torch.Tensor:
        """``[B, F, 4, h, w]`` preconditioned noisy latents, the first frame's latents (repeated over F), the
        ``[B, F, CONDITION_CHANNELS, h, w]`` conditions, EDM's ``c_noise [B]``, ``[B, 1, D]`` image embeddings and
        ``[B, 2]`` scores -> the UNet's v-prediction, ``[B, F, 4, h, w]``."""
        added = torch.tensor(ADDED_TIME_IDS, device=scores.device).expand(len(scores), -1)
        self._batch_scores = scores
        try:
            sample = torch.cat([latents_in, image_latents, conditions], dim=2)
            return self.unet(sample, noise_levels, image_embeddings, added_time_ids=added).sample
        finally:
            self._batch_scores = None

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The parameters fine-tuning changes (all of them, or LoRA's, the input layer and the score MLPs)."""
        names = {name for name, parameter in self.named_parameters() if parameter.requires_grad}
        return {name: tensor.detach().contiguous() for name, tensor in self.state_dict().items() if name in names}


def widen_input(unet: nn.Module, extra: int) -> None:
    """``extra`` more input channels for ``unet.conv_in``, their weights zero: the output is unchanged."""
    old = unet.conv_in
    new = nn.Conv2d(old.in_channels + extra, old.out_channels, old.kernel_size, old.stride, old.padding)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, : old.in_channels] = old.weight
        new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=new.in_channels)


def condition_planes(batch: dict, frames: int, latent_size: tuple[int, int]) -> torch.Tensor:
    """The batch's motion mask, region trajectories and region mask as ``[B, F, 4, h, w]`` at the latent grid."""
    height, width = latent_size
    trajectories = batch["region_trajectories"]  # [B, F, 2, fh, fw], px
    flat = F.interpolate(trajectories.flatten(0, 1), size=(height, width), mode="bilinear", align_corners=False)
    moving = flat.unflatten(0, trajectories.shape[:2]) * TRAJECTORY_SCALE
    still = [batch["motion_mask"].float(), batch["region_mask"].float()]  # [B, 1, H, W], [B, 1, fh, fw]
    planes = [F.interpolate(plane, size=(height, width), mode="nearest") for plane in still]
    per_frame = [plane[:, None].expand(-1, frames, -1, -1, -1) for plane in planes]
    return torch.cat([per_frame[0], moving, per_frame[1]], dim=2)


def frame_heatmap(heatmap: torch.Tensor, frames: int, latent_size: tuple[int, int]) -> torch.Tensor:
    """MotiF's heatmap ``[B, T', h', w']`` at every frame and the latent grid: ``[B, F, 1, h, w]``."""
    per_frame = heatmap.repeat_interleave(-(-frames // heatmap.shape[1]), dim=1)[:, :frames]
    return F.interpolate(per_frame.float(), size=latent_size, mode="bilinear", align_corners=False)[:, :, None]


def clip_embeddings(encoder: nn.Module, first_frame: torch.Tensor) -> torch.Tensor:
    """``[B, 3, H, W]`` in [-1, 1] -> CLIP image embeddings ``[B, 1, D]`` (SVD's cross-attention context)."""
    pixels = F.interpolate((first_frame + 1) / 2, size=(CLIP_SIZE, CLIP_SIZE), mode="bicubic", align_corners=False)
    mean = torch.tensor(CLIP_MEAN, device=pixels.device)[:, None, None]
    std = torch.tensor(CLIP_STD, device=pixels.device)[:, None, None]
    return encoder(pixel_values=(pixels.clamp(0, 1) - mean) / std).image_embeds[:, None]


def svd_focal_loss(
    model: MotionSvd, parts: SvdParts, batch: dict, focal_weight: float, generator: torch.Generator
) -> torch.Tensor:
    """One batch's loss: frames encoded by the VAE, noised at EDM's log-normal levels, denoised by the UNet
    (v-prediction), scored against the clean latents with MotiF's heatmap weighting."""
    frames = batch["frames"]  # [B, F, 3, H, W] in [-1, 1]
    count, length = frames.shape[:2]

    def normal(*shape: int) -> torch.Tensor:  # drawn on the CPU generator, used where the batch is
        return torch.randn(shape, generator=generator).to(frames.device)

    with torch.no_grad():
        scale = parts.vae.config.scaling_factor
        latents = parts.vae.encode(frames.flatten(0, 1)).latent_dist.sample(generator) * scale
        latents = latents.unflatten(0, (count, length))
        first = batch["first_frame"] + NOISE_AUGMENTATION * normal(*batch["first_frame"].shape)
        image_latents = parts.vae.encode(first).latent_dist.mode()[:, None].expand(-1, length, -1, -1, -1)
        context = clip_embeddings(parts.image_encoder, batch["first_frame"])
    latent_size = latents.shape[-2:]
    sigmas = torch.exp(EDM_P_MEAN + EDM_P_STD * normal(count))[:, None, None, None, None]
    noisy = latents + normal(*latents.shape) * sigmas
    prediction = model(
        noisy / (sigmas**2 + 1).sqrt(),
        image_latents,
        condition_planes(batch, length, tuple(latent_size)),
        sigmas.flatten().log() / 4,
        context,
        batch["scores"],
    )
    denoised = prediction * (-sigmas / (sigmas**2 + 1).sqrt()) + noisy / (sigmas**2 + 1)
    error = (1 + sigmas**2) / sigmas**2 * (denoised - latents) ** 2
    heat = frame_heatmap(batch["heatmap"], length, tuple(latent_size))
    return error.mean() + focal_weight * (error * heat**2).mean()

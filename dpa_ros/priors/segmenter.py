"""Stage 1, detect and segment (Grounded-SAM): Grounding DINO boxes from a text prompt, SAM masks per box.

Profile section ``segmenter``: :class:`dpa_ros.priors.config.SegmenterConfig` (the detector in
transformers layout, the SAM checkpoint of segment_anything, thresholds, NMS, limits).

Both models run in float32 (Grounding DINO's deformable attention and SamPredictor's transforms
expect it). ``source`` in each subsection:
``weights`` (default; from weights_dir or the HF cache), ``tiny`` (:mod:`dpa_ros.priors.tiny`) or
``random`` (:mod:`dpa_ros.priors.random_models`; the detector's ``variant``, base or tiny, and SAM's
``type`` pick the size).
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from dpa_ros.priors import random_models, tiny
from dpa_ros.priors.base import Detection, LazyModel, ReconstructionError
from dpa_ros.priors.config import SegmenterConfig
from dpa_ros.priors.weights import resolve, spec_for


def parse_prompt(prompt: str) -> list[str]:
    """The categories of a Grounding DINO prompt, lower case, each once.

    ``"Sofa. chair. table."`` → ``["sofa", "chair", "table"]``.
    """
    cats = [c.strip().lower() for c in prompt.replace(",", ".").split(".")]
    return list(dict.fromkeys(c for c in cats if c))


def category_token_spans(offsets: list[tuple[int, int]], text: str, categories: list[str]) -> list[list[int]]:
    """For each category, the token positions whose character offsets fall inside its span in ``text``."""
    spans, start = [], 0
    for cat in categories:
        c0 = text.index(cat, start)
        c1 = c0 + len(cat)
        start = c1
        spans.append([i for i, (a, b) in enumerate(offsets) if b > a and a >= c0 and b <= c1])
    return spans


class GroundedSAM(LazyModel):
    """Open-vocabulary instance segmentation: Grounding DINO + Segment Anything (batched over boxes).

    Thresholds are read from ``cfg`` at every call, so a caller may change them on a loaded adapter
    with :meth:`set_thresholds`.
    """

    name = "segment"
    config_class = SegmenterConfig
    section = "segmenter"

    def set_thresholds(self, **thresholds: float) -> None:
        """Replace ``box_threshold``, ``text_threshold`` and/or ``keep_threshold`` (validated) from the next call on."""
        self.cfg = self.cfg.replace(**thresholds)

    def _load(self) -> None:
        self.dtype = torch.float32  # see the module docstring
        det_cfg, sam_cfg = self.cfg.detector, self.cfg.sam
        if det_cfg.source == "tiny":
            self.detector, self.processor = tiny.grounding_dino(det_cfg.seed, det_cfg.image_size)
        elif det_cfg.source == "random":
            self.detector, self.processor = random_models.grounding_dino(det_cfg.variant, self.device)
        else:
            path = resolve(spec_for(det_cfg, "segmenter.detector"), self.profile, self.weights_dir)
            from transformers import GroundingDinoForObjectDetection, GroundingDinoProcessor

            self.processor = GroundingDinoProcessor.from_pretrained(path, local_files_only=True)
            self.detector = GroundingDinoForObjectDetection.from_pretrained(path, local_files_only=True).eval()
        if sam_cfg.source == "tiny":
            sam = tiny.sam(sam_cfg.seed, sam_cfg.image_size)
        elif sam_cfg.source == "random":
            sam = random_models.sam(sam_cfg.type, self.device)
        else:
            path = resolve(spec_for(sam_cfg, "segmenter.sam"), self.profile, self.weights_dir)
            from segment_anything import sam_model_registry

            sam = sam_model_registry[sam_cfg.type](checkpoint=str(path))
        from segment_anything import SamPredictor

        self.detector.to(self.device)
        self.predictor = SamPredictor(sam.to(self.device).eval())

    @torch.no_grad()
    def detect(self, image_rgb: np.ndarray, categories: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Grounding DINO boxes for ``categories`` on a (H, W, 3) uint8 image.

        Returns (boxes (n, 4) float64 xyxy pixels, scores (n,) float64 in [0, 1], labels), after the
        box/text thresholds, σ and cross-label NMS, best first, at most ``max_instances``.
        """
        self.load()
        if not categories:
            raise ReconstructionError("empty detection prompt: give categories like 'chair. table.'")
        h, w = image_rgb.shape[:2]
        text = " ".join(f"{c}." for c in categories)
        enc = self.processor.tokenizer(text, return_offsets_mapping=True)
        spans = category_token_spans(enc["offset_mapping"], text, categories)
        inputs = self.processor(images=Image.fromarray(image_rgb), text=text, return_tensors="pt").to(self.device)
        out = self.detector(**inputs)
        n_tok = inputs["input_ids"].shape[1]
        probs = out.logits[0, :, :n_tok].float().sigmoid()  # (queries, tokens)
        box_score = probs.max(dim=1).values
        cat_prob = torch.stack([probs[:, s].max(dim=1).values if s else torch.zeros_like(box_score) for s in spans], 1)
        best_prob, best_cat = cat_prob.max(dim=1)
        keep = ((box_score > self.cfg.box_threshold) & (best_prob > self.cfg.text_threshold)
                & (box_score > self.cfg.keep_threshold))
        cxcywh = out.pred_boxes[0].float()[keep]
        scores, cats = box_score[keep], best_cat[keep]
        boxes = torch.stack([cxcywh[:, 0] - cxcywh[:, 2] / 2, cxcywh[:, 1] - cxcywh[:, 3] / 2,
                             cxcywh[:, 0] + cxcywh[:, 2] / 2, cxcywh[:, 1] + cxcywh[:, 3] / 2], 1)
        boxes = boxes * torch.tensor([w, h, w, h], dtype=boxes.dtype, device=boxes.device)
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w - 1)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h - 1)
        from torchvision.ops import nms

        order = nms(boxes, scores, self.cfg.nms_iou)
        max_n = self.cfg.max_instances
        if max_n is not None:
            order = order[: int(max_n)]
        return (boxes[order].cpu().double().numpy(), scores[order].cpu().double().numpy(),
                [categories[i] for i in cats[order].tolist()])

    @torch.no_grad()
    def masks(self, image_rgb: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """SAM masks (n, H, W) bool for xyxy pixel boxes (n, 4), one mask per box, in one batch."""
        self.load()
        h, w = image_rgb.shape[:2]
        if len(boxes) == 0:
            return np.zeros((0, h, w), dtype=bool)
        self.predictor.set_image(np.ascontiguousarray(image_rgb))
        tb = torch.as_tensor(boxes, dtype=torch.float32, device=self.device)
        tb = self.predictor.transform.apply_boxes_torch(tb, (h, w))
        masks, _, _ = self.predictor.predict_torch(point_coords=None, point_labels=None, boxes=tb,
                                                   multimask_output=False)
        return masks[:, 0].cpu().numpy().astype(bool)

    def segment(self, image_rgb: np.ndarray, prompt: str) -> list[Detection]:
        """Detected and segmented instances of the prompt's categories in a (H, W, 3) uint8 RGB image.

        Returns [] when nothing passes the thresholds (the pipeline turns that into an error).
        """
        image_rgb = np.asarray(image_rgb)
        if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
            raise ReconstructionError(f"image must be (H, W, 3) uint8 RGB, got {image_rgb.shape} {image_rgb.dtype}")
        boxes, scores, labels = self.detect(image_rgb, parse_prompt(prompt))
        masks = self.masks(image_rgb, boxes)
        min_px = self.cfg.min_mask_pixels
        return [Detection(label=lab, score=float(s), box=b, mask=m)
                for b, s, lab, m in zip(boxes, scores, labels, masks) if m.sum() >= min_px]

"""Still pictures from a live stream: the latest IDR decoded with PyAV and encoded as JPEG by OpenCV.

Only keyframes are decoded — an IDR stands alone, so no decoder has to follow the stream and the
relay path stays decode-free. With a 1 s GOP a snapshot is at most about a second old; the JPEG of
a keyframe is cached until the next one arrives.
"""

from __future__ import annotations

import av
import cv2
import numpy as np
from numpy.typing import NDArray


class SnapshotError(RuntimeError):
    """No picture could be produced (no keyframe yet, or it does not decode)."""


def decode_keyframe(access_unit: bytes) -> NDArray[np.uint8]:
    """BGR pixels of one IDR access unit (Annex B with SPS/PPS)."""
    decoder = av.CodecContext.create("h264", "r")
    try:
        frames = [*decoder.decode(av.Packet(access_unit)), *decoder.decode(None)]
    except av.error.FFmpegError as exc:
        raise SnapshotError(f"keyframe does not decode: {exc}") from exc
    if not frames:
        raise SnapshotError("keyframe produced no picture")
    image: NDArray[np.uint8] = frames[0].to_ndarray(format="bgr24")  # type: ignore[assignment]
    return image


def jpeg(image: NDArray[np.uint8], quality: int = 85) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise SnapshotError("JPEG encoding failed")
    return buf.tobytes()


def keyframe_jpeg(access_unit: bytes, quality: int = 85) -> bytes:
    """Decode an IDR and return it as JPEG bytes (blocking: run it in a thread)."""
    return jpeg(decode_keyframe(access_unit), quality)

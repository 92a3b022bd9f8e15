"""What a run did: frames, files, bytes, ratios and time, as ``lbnl-compress`` prints them."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class Report:
    """What a run did: frames, files, bytes and ratios, time."""

    master: str
    data_files: list
    frames_in: int
    frames_out: int
    frame_shape_in: tuple
    frame_shape_out: tuple
    dtype_out: str
    saturation_out: float
    bytes_in: int
    bytes_out: int
    bytes_master: int
    seconds: float
    notes: list = field(default_factory=list)
    blocks_skipped: int = 0
    validation: str | None = None
    fidelity: str | None = None  # the sampled estimate of a lossy run (quality.sample_fidelity)
    lossy: str | None = None  # "hcomp", "j2k", "sz3", "zfp" or None
    lossy_bytes: list = field(
        default_factory=list
    )  # mean codec bytes per frame, per data file written
    frames_processed: int | None = None  # input frames of the data files written by this run
    squash_files: list = field(default_factory=list)
    cbf_files: list = field(default_factory=list)  # --cbf: the output frames as miniCBF
    cbf_kept: int = 0  # of them, finished by an earlier run of the job
    bytes_squash: int = 0
    lost_pixels: int | None = None  # -c sz3: valid pixels decoding negative or at saturation
    master_written: bool = True  # False: this job's master was there already, untouched

    @classmethod
    def of(cls, plan, blocks: list, seconds: float, validation: str | None = None,
           fidelity: str | None = None) -> Report:  # fmt: skip
        """The report of a run of ``plan`` (:class:`lbnl_dask.plan.Plan`) whose data files'
        write records are ``blocks``, after ``seconds``."""
        squash = plan.squash_files
        return cls(
            master=plan.master,
            data_files=plan.data_files,
            frames_in=plan.frames_in,
            frames_out=plan.frames_out,
            frame_shape_in=plan.frame_shape_in,
            frame_shape_out=plan.frame_shape_out,
            dtype_out=str(plan.dtype),
            saturation_out=plan.saturation,
            bytes_in=plan.bytes_in,
            bytes_out=sum(os.path.getsize(p) for p in plan.data_files),
            bytes_master=os.path.getsize(plan.master),
            seconds=seconds,
            notes=plan.notes,
            blocks_skipped=plan.skipped,
            validation=validation,
            fidelity=fidelity,
            lossy=plan.lossy,
            lossy_bytes=[b.get("lossy_bytes_mean") for b in blocks],
            frames_processed=plan.frames_to_write(),
            squash_files=squash,
            bytes_squash=sum(os.path.getsize(p) for p in squash),
            lost_pixels=_total(b.get("lost_pixels") for b in blocks),
            master_written=not plan.complete,
        )

    def block_messages(self) -> list[str]:
        """l_bnl_compress' per-block lines (its spelling kept: scripts grep them)."""
        label = {
            "hcomp": "hcomp avg compressed image size",
            "j2k": "j2k avg compressed imgage size",
            "sz3": "sz3 avg compressed image size",
            "zfp": "zfp avg compressed image size",
        }.get(self.lossy)
        return [f"{label}: {int(round(b))}" for b in self.lossy_bytes if label and b is not None]

    @property
    def raw2_bytes(self) -> int:
        """The input as 2-byte raw pixels (the HDRMX paper's reference)."""
        return self.frames_in * int(np.prod(self.frame_shape_in)) * 2

    @property
    def ratio_files(self) -> float:
        return self.bytes_in / max(self.bytes_out, 1)

    @property
    def ratio_raw2(self) -> float:
        return self.raw2_bytes / max(self.bytes_out, 1)

    @property
    def ratio_raw2_with_master(self) -> float:
        """As :attr:`ratio_raw2`, counting the output master's bytes too."""
        return self.raw2_bytes / max(self.bytes_out + self.bytes_master, 1)

    @property
    def ratio_raw4(self) -> float:
        return 2 * self.raw2_bytes / max(self.bytes_out, 1)

    def as_dict(self) -> dict:
        d = asdict(self)
        d.update(
            raw2_bytes=self.raw2_bytes,
            ratio_files=self.ratio_files,
            ratio_raw2=self.ratio_raw2,
            ratio_raw4=self.ratio_raw4,
            ratio_raw2_with_master=self.ratio_raw2_with_master,
        )
        return d

    def __str__(self):
        mb = 1e6
        lines = [
            f"master         {self.master}",
            f"data files     {len(self.data_files)} ({os.path.basename(self.data_files[0])}"
            f"{' ...' if len(self.data_files) > 1 else ''})",
            f"frames         {self.frames_in} in {self.frame_shape_in} -> {self.frames_out} out "
            f"{self.frame_shape_out} {self.dtype_out}, saturation {self.saturation_out:.10g}",
            f"bytes          {self.bytes_in / mb:.2f} MB in (data files) -> "
            f"{self.bytes_out / mb:.3f} MB "
            f"out (data files) + {self.bytes_master / mb:.2f} MB master",
            f"ratio          data files: {self.ratio_files:.1f}x vs input files, "
            f"{self.ratio_raw2:.1f}x vs "
            f"2-byte raw, {self.ratio_raw4:.1f}x vs 4-byte raw",
            f"               data files + master: {self.ratio_raw2_with_master:.1f}x vs 2-byte raw",
            self._time_line(),
        ]
        if self.squash_files:
            lines.insert(
                2,
                f"squash files   {len(self.squash_files)} "
                f"({os.path.basename(self.squash_files[0])} ...), {self.bytes_squash / mb:.3f} MB",
            )
        if self.cbf_files:
            cbf_mb = sum(os.path.getsize(p) for p in self.cbf_files if os.path.exists(p)) / mb
            lines.insert(
                2,
                f"cbf files      {len(self.cbf_files)} ({os.path.basename(self.cbf_files[0])}"
                f" ...), {cbf_mb:.3f} MB"
                + (f", {self.cbf_kept} kept from an earlier run" if self.cbf_kept else ""),
            )
        if self.blocks_skipped:
            lines.append(
                f"resumed        {self.blocks_skipped} finished data file(s) of an earlier run kept"
            )
        if self.fidelity:
            lines.append(f"fidelity       {self.fidelity}")
        if self.lost_pixels:
            pixels = self.frames_out * int(np.prod(self.frame_shape_out))
            lines.append(
                f"warning        {self.lost_pixels} valid pixels ({self.lost_pixels / pixels:.2%}"
                " of the output) decode below 0 or at the saturation: readers mask them "
                "(a background below the error bound)"
            )
        lines += [f"note           {n}" for n in self.notes]
        if self.validation:
            lines.append(self.validation)
        return "\n".join(lines)

    def _time_line(self) -> str:
        """Throughput of the frames this run processed (a resumed run's kept files excluded)."""
        n = self.frames_in if self.frames_processed is None else self.frames_processed
        if n == 0:
            cbf = len(self.cbf_files) - self.cbf_kept  # --cbf files this run wrote
            what = ("the master written again (its data files were complete)"
                    if self.master_written else f"{cbf} miniCBF file(s) written, the HDF5 "
                    "output was complete" if cbf else "nothing left to write")  # fmt: skip
            return f"time           {self.seconds:.2f} s, {what}"
        raw4 = 4 * n * int(np.prod(self.frame_shape_in)) / 1e6
        return (
            f"time           {self.seconds:.2f} s, "
            f"{n / max(self.seconds, 1e-9):.1f} input frames/s, "
            f"{raw4 / max(self.seconds, 1e-9):.0f} MB/s of 4-byte raw"
            + ("" if n == self.frames_in else f" ({n} of {self.frames_in} frames this run)")
        )


def _total(counts) -> int | None:
    """The sum of the counts that are not None; None if none is."""
    known = [c for c in counts if c is not None]
    return sum(known) if known else None

"""Run under qemu-aarch64 by onnxruntime_check.sh, with the aarch64 Python it prepares.

    python onnxruntime_check.py --cpuinfo            a /proc/cpuinfo for the emulated CPU
    python onnxruntime_check.py MODEL WINDOWS.npy... one `edge_ser.kernel_check` line per model

--cpuinfo exists because onnxruntime's CPU detection reads /proc/cpuinfo, which qemu-user
passes through from the x86 host (onnxruntime then crashes). The features come from the
emulated CPU's AT_HWCAP / AT_HWCAP2, its part number from MIDR_EL1, so onnxruntime sees the CPU
that qemu emulates. Exit status 1 if any model's kernels differ from its reference arithmetic.
"""
import struct
import sys

# Linux arch/arm64 hwcap bit names, in bit order (AT_HWCAP = 16, AT_HWCAP2 = 26).
HWCAP = ("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop "
         "sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs sb paca pacg").split()
HWCAP2 = ("dcpodp sve2 sveaes svepmull svebitperm svesha3 svesm4 flagm2 frint svei8mm svef32mm svef64mm svebf16 "
          "i8mm bf16 dgh rng bti mte ecv afp rpres mte3 sme sme_i16i64 sme_f64f64 sme_i8i32 sme_f16f32 "
          "sme_b16f32 sme_f32f32 sme_fa64 wfxt ebf16 sve_ebf16").split()


def features() -> str:
    data = open("/proc/self/auxv", "rb").read()
    aux = dict(struct.unpack("<QQ", data[i:i + 16]) for i in range(0, len(data), 16))
    return " ".join([n for i, n in enumerate(HWCAP) if aux.get(16, 0) >> i & 1]
                    + [n for i, n in enumerate(HWCAP2) if aux.get(26, 0) >> i & 1])


def midr() -> int:
    """MIDR_EL1, read by running `mrs x0, midr_el1; ret` (Linux emulates the read at EL0)."""
    import ctypes
    import mmap

    code = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    code.write(struct.pack("<II", 0xD5380000, 0xD65F03C0))
    return ctypes.CFUNCTYPE(ctypes.c_uint64)(ctypes.addressof(ctypes.c_char.from_buffer(code)))()


def cpuinfo() -> str:
    m = midr()
    return "".join(f"processor\t: {p}\nFeatures\t: {features()}\nCPU implementer\t: {m >> 24 & 0xff:#x}\n"
                   f"CPU architecture: 8\nCPU variant\t: {m >> 20 & 0xf:#x}\nCPU part\t: {m >> 4 & 0xfff:#x}\n"
                   f"CPU revision\t: {m & 0xf}\n\n" for p in range(2))


def main(args: list[str]) -> int:
    if args == ["--cpuinfo"]:
        sys.stdout.write(cpuinfo())
        return 0
    import numpy as np
    import onnxruntime

    from edge_ser.kernel_check import kernel_check

    print(f"   onnxruntime {onnxruntime.__version__}, Features: {features()}", flush=True)
    status = 0
    for model, windows in zip(args[::2], args[1::2]):
        result = kernel_check(model, np.load(windows))
        print("   " + result.summary(model), flush=True)
        status |= not result.ok
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

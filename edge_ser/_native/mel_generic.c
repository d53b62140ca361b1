/* The mel kernel at the baseline vector width (SSE2 on x86-64, NEON on aarch64). */
#define LANES 2
#define MEL_FRAMES_FN mel_frames_generic
#include "mel_kernel.h"

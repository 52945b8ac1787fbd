# nbi's own matrix-product kernels against the BLAS's, at the shapes nbi's networks multiply.
#
#   Rscript bench/gemm.R                     # after R CMD INSTALL .
#   NBI_BENCH_SECONDS=0.5 Rscript bench/gemm.R   # longer timings (default 0.2 s each)
#   NBI_ISA=avx2 OPENBLAS_CORETYPE=Haswell Rscript bench/gemm.R   # an AVX2 CPU, as a proxy
#
# For each shape (M x N x K: a batch of M rows through a layer of K inputs and N outputs,
# op(A) transposed for the weight gradients) and 1 and 2 threads it prints GFLOP/s (2 M N K
# per product, best of 3) of the products as nn_gemm runs them in training: float64 by
# nbi's kernel (nn/dgemm.c) and by the BLAS's dgemm on the same tiles, float32 by nbi's
# kernel (nn/sgemm.c) and by the BLAS's sgemm (on float copies), and the ratios nbi /
# BLAS. nbi uses its own kernel by default where the ratio is above 1 (the header says
# which each precision uses on this CPU). NBI_BENCH_SMOKE=1: one tiny timing per cell.
suppressPackageStartupMessages(library(nbi))
lib <- file.path(dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1])), "lib")
if (!dir.exists(lib)) lib <- file.path("bench", "lib")
source(file.path(lib, "cpu.R"))
smoke <- identical(Sys.getenv("NBI_BENCH_SMOKE"), "1")
seconds <- as.numeric(Sys.getenv("NBI_BENCH_SECONDS", if (smoke) "0.005" else "0.2"))
reps <- if (smoke) 1L else 3L
cat(sprintf("nbi %s | %s | CPU: %s | vector ISA: %s%s\n", utils::packageVersion("nbi"),
            R.version.string, cpu_info$model, cpu_info$isa,
            if (nzchar(Sys.getenv("NBI_ISA"))) sprintf(" (NBI_ISA=%s)", Sys.getenv("NBI_ISA")) else ""))
cat(sprintf("BLAS: %s%s\n", extSoftVersion()[["BLAS"]],
            if (nzchar(Sys.getenv("OPENBLAS_CORETYPE")))
              sprintf(" (OPENBLAS_CORETYPE=%s)", Sys.getenv("OPENBLAS_CORETYPE")) else ""))
shapes <- list(
  list(s = c(512, 256, 256), t = c(0L, 1L), what = "MAF hidden layer, forward"),
  list(s = c(256, 256, 512), t = c(1L, 0L), what = "MAF hidden layer, weight gradient"),
  list(s = c(50, 500, 500), t = c(0L, 1L), what = "SEDflow width, batch 50"),
  list(s = c(256, 64, 64), t = c(0L, 1L), what = "small layer"),
  list(s = c(6400, 128, 384), t = c(0L, 1L), what = "conv1d as GEMM (128 x L 50, k 3)"),
  list(s = c(1024, 1024, 1024), t = c(0L, 0L), what = "1024^3"))
if (smoke) shapes <- shapes[c(1, 4)]
has_sgemm <- .Call(nbi:::C_r_have_sgemm)
default_kernels <- sprintf("float64 %s, float32 %s", .Call(nbi:::C_r_dgemm_kernel),
                           .Call(nbi:::C_r_sgemm_kernel))
# from here float32 mode 1 is the BLAS's sgemm (nn_ctx_make reads NBI_SGEMM at every call);
# modes 2 and 3 force nbi's kernels, mode 4 the BLAS's dgemm
Sys.setenv(NBI_SGEMM = "blas")
cat(sprintf("default kernels here: %s\n\n", default_kernels))
rows <- list()
for (sh in shapes) for (th in 1:2) {
  g <- function(mode) product_gflops(threads = th, reps = reps, seconds = seconds, mode = mode,
                                     shape = sh$s, trans = sh$t)
  d_own <- g(3L)
  d_blas <- g(4L)
  s_own <- g(2L)
  s_blas <- if (has_sgemm) g(1L) else NA  # mode 1 with NBI_SGEMM=blas (set above)
  rows[[length(rows) + 1]] <- data.frame(
    shape = sprintf("%d x %d x %d%s", sh$s[1], sh$s[2], sh$s[3], if (sh$t[1]) " (A')" else ""),
    what = sh$what, thr = th, f64_nbi = d_own, f64_blas = d_blas, f64_ratio = d_own / d_blas,
    f32_nbi = s_own, f32_blas = s_blas, f32_ratio = s_own / s_blas)
}
tab <- do.call(rbind, rows)
num <- vapply(tab, is.numeric, TRUE) & names(tab) != "thr"
tab[num] <- lapply(tab[num], function(v) round(v, 2))
cat("GFLOP/s (nbi = nbi's kernel, blas = the BLAS's; ratio = nbi / blas)\n")
print(tab, row.names = FALSE)

# Shared by the benches: what the CPU is, and how fast a large matrix product runs on it in
# this run (the "peak" that training rates are put next to).

cpu_info <- local({
  lines <- tryCatch(readLines("/proc/cpuinfo", warn = FALSE), error = function(e) character(0))
  field <- function(name) {
    v <- grep(sprintf("^%s\\s*:", name), lines, value = TRUE)
    if (length(v)) trimws(sub("^[^:]*:", "", v[1])) else NA_character_
  }
  flags <- strsplit(field("flags"), "[[:space:]]+")[[1]]
  isa <- if ("avx512f" %in% flags) "avx512f" else if ("avx2" %in% flags) "avx2" else
    if (all(is.na(flags))) "unknown (no /proc/cpuinfo flags)" else "none (no avx2)"
  # NBI_ISA=base|avx2 holds nbi's dispatched code below what the CPU has (a proxy run)
  held <- Sys.getenv("NBI_ISA")
  rank <- c(base = 0, avx2 = 1, avx512f = 2)
  if (held %in% c("base", "avx2") && isa %in% names(rank) && rank[[held]] < rank[[isa]])
    isa <- sprintf("%s, nbi's code held to %s by NBI_ISA", isa, held)
  list(model = if (is.na(field("model name"))) "unknown" else field("model name"), isa = isa)
})

# GFLOP/s of M x N x K products (`shape`; n x n x n by default) through nbi's C core
# (nn_gemm, as training calls it) at `threads` threads: float64 (mode 0) or float32 (mode 1),
# or any mode r_nn_gemm takes (2 float32 and 3 float64 by nbi's kernel, 4 float64 by the
# BLAS); op(A) and op(B) transposed as `trans` says. The best of `reps` timings of calls
# repeated for at least `seconds` each.
product_gflops <- function(precision = c("float64", "float32"), threads = 1L, n = 1024L,
                           reps = 3L, seconds = 0.2, mode = NULL, shape = c(n, n, n),
                           trans = c(0L, 0L)) {
  if (is.null(mode)) mode <- if (match.arg(precision) == "float32") 1L else 0L
  M <- shape[1]; N <- shape[2]; K <- shape[3]
  a <- matrix(stats::rnorm(M * K), if (trans[1]) K else M)
  b <- matrix(stats::rnorm(K * N), if (trans[2]) N else K)
  c0 <- matrix(0, M, N)
  # the BLAS on one thread, as nbi runs it (its tiles spread over nbi's own threads)
  old <- .Call(nbi:::C_r_blas_threads, 1L)
  if (!is.na(old)) on.exit(.Call(nbi:::C_r_blas_threads, old), add = TRUE)
  best <- 0
  for (r in seq_len(reps)) {
    calls <- 0
    t0 <- proc.time()[["elapsed"]]
    repeat {
      .Call(nbi:::C_r_nn_gemm, a, b, c0, as.integer(trans), c(1, 0), as.integer(mode),
            as.integer(threads), 0L)
      calls <- calls + 1
      s <- proc.time()[["elapsed"]] - t0
      if (s >= seconds) break
    }
    best <- max(best, 2 * prod(as.numeric(shape)) * calls / s / 1e9)
  }
  best
}

# Training throughput of the featurizers (forward + backward + Adam through featurizer and
# flow, the C entry point fit() uses), at 1 and 2 threads, in float64 and float32 products
# (nbi_engine(precision = )). The BLAS runs with as many threads as nbi (float64) or one
# (float32, whose products spread their own panels over the threads), as in fit().
#
#   Rscript bench/featurizers.R        # after R CMD INSTALL .
#
# 1. ResNet-GRU of the seed 000 demo: sequences of length 50, depth 3, dim_conv_max 256,
#    dim_out 128 (channels 32, 64, 128; 2 GRU layers of 128), flow of 5 blocks x 128 hidden.
# 2. Set transformer: d_model 64, 4 heads, 2 layers, 10 tokens, sets of 3-10 rows of
#    (token, magnitude, error), flow of 5 blocks x 64 hidden.
# 3. The ResNet-GRU of 1. at L = 50, 100 and 400 next to the same network in PyTorch
#    (bench/reference/torch_resnet_gru.py, identical parameter count, float32), measured in
#    the same run when a python with torch is found (see bench/lib/torch.R;
#    NBI_BENCH_NO_TORCH=1 skips it): best of 1 and 2 threads each, and the ratio. Next to
#    nbi's float32 rate: its GFLOP/s (the multiply-adds of the convolutions, GRU and linear
#    maps, and of the flow's dense weight matrices, times 3 for forward + backward) and that
#    as a % of a 1024^3 float32 product through the same C core at the same threads ("peak").
suppressPackageStartupMessages(library(nbi))
# the shared helpers, from bench/lib next to this script
here <- local({   # this script's folder, for bench/lib and bench/reference
  f <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1])
  if (is.na(f)) "bench" else dirname(f)
})
source(file.path(here, "lib", "train-rate.R"))   # train_rate()
source(file.path(here, "lib", "torch.R"))        # find_torch_python(), run_torch_script()
source(file.path(here, "lib", "cpu.R"))          # cpu_info, product_gflops()
# NBI_BENCH_SMOKE=1: every measurement for a few milliseconds (CI checks the script runs)
smoke <- identical(Sys.getenv("NBI_BENCH_SMOKE"), "1")
target <- as.numeric(Sys.getenv("NBI_BENCH_SECONDS",
                                if (identical(Sys.getenv("NBI_BENCH_SMOKE"), "1")) "0.01" else "3"))


set.seed(1)
cat("nbi featurizer benchmark |", R.version.string, "| BLAS:", extSoftVersion()[["BLAS"]], "\n")
cat(sprintf("CPU: %s | vector ISA: %s | float32 products: %s | float64 products: %s\n\n",
            cpu_info$model, cpu_info$isa, .Call(nbi:::C_r_sgemm_kernel),
            .Call(nbi:::C_r_dgemm_kernel)))
d <- 3
n <- 2048
batch <- 128
L <- 50
rg <- nbi:::model_spec(featurizer_resnet_gru(depth = 3, dim_conv_max = 256, dim_out = 128),
                       flow_maf(blocks = 5, hidden = 128, mixture = 4), n_in = L, d = d)
x_rg <- matrix(rnorm(L * n), L, n)
theta <- matrix(rnorm(d * n), d, n)

rows <- 10
set_feat <- featurizer_set_transformer(n_tokens = 10, d_model = 64, heads = 4, layers = 2)
st <- nbi:::model_spec(set_feat, flow_maf(blocks = 5, hidden = 64, mixture = 4),
                       n_in = rows * 3, d = d)
sets <- lapply(seq_len(n), function(i) {
  k <- sample(3:10, 1)
  cbind(sample(10, k), rnorm(k), runif(k, 0.01, 0.1))
})
scale <- nbi:::fit_input_scale(sets, set_feat)
x_st <- nbi:::encode_input(sets, scale, set_feat, rows)

out <- NULL
for (prec in c("float64", "float32")) for (th in 1:2) {
  rg$precision <- st$precision <- prec
  out <- rbind(out, data.frame(featurizer = "ResNet-GRU (L 50, 32..128 ch, 2 GRU)",
                               precision = prec, threads = th,
                               params = length(nbi:::model_init(rg, 1)),
                               `train samples/s` = round(train_rate(rg, x_rg, theta, batch, th, target)),
                               check.names = FALSE))
  out <- rbind(out, data.frame(featurizer = "set transformer (64, 4 heads, 2 layers)",
                               precision = prec, threads = th,
                               params = length(nbi:::model_init(st, 1)),
                               `train samples/s` = round(train_rate(st, x_st, theta, batch, th, target)),
                               check.names = FALSE))
}
cat(sprintf("load average: %s\n", paste(readLines("/proc/loadavg", warn = FALSE), collapse = " ")))
print(out[order(out$featurizer, out$precision, out$threads), ], row.names = FALSE)

# ---- 3. ResNet-GRU against PyTorch, same run ---------------------------------------------
torch_script <- file.path(here, "reference", "torch_resnet_gru.py")
torch_python <- if (file.exists(torch_script)) find_torch_python() else ""
cat("\nResNet-GRU (as 1.) against PyTorch: training samples/s, best of 1 and 2 threads\n")
cat("PyTorch:", if (nzchar(torch_python)) sprintf("%s %s, this run", torch_python, torch_script)
    else "no python with torch found: nbi alone", "\n")
# Flops of one training sample of the ResNet-GRU + flow (3 x the forward multiply-adds x 2):
# convolutions 2 L k ci co each, the 1x1 projection on a width change, GRU layers
# 2 T 3H (C + H), the last linear map, and the flow's dense weights (all its parameters
# but the featurizer's, masked entries included: the products are dense).
rg_train_flops <- function(f, L, n_params) {
  fl <- 0; p_feat <- 0; ci <- f$channels
  for (i in seq_len(f$depth)) {
    co <- min(f$dim_conv_min * 2^(i - 1), f$dim_conv_max)
    w <- f$kernel * ci * co + f$kernel * co * co + if (ci != co) ci * co else 0
    fl <- fl + 2 * L * w
    p_feat <- p_feat + w + 6 * co + if (ci != co) co else 0
    if (i < f$depth) L <- L %/% 2
    ci <- co
  }
  H <- ci
  for (j in seq_len(f$n_rnn)) {
    fl <- fl + 2 * L * 3 * H * (ci + H)
    p_feat <- p_feat + 3 * H * (ci + H) + 6 * H
    ci <- H
  }
  fl <- fl + 2 * H * f$dim_out
  p_feat <- p_feat + H * f$dim_out + f$dim_out
  3 * (fl + 2 * (n_params - p_feat))
}
rg_feat <- featurizer_resnet_gru(depth = 3, dim_conv_max = 256, dim_out = 128)
n_peak <- if (smoke) 64L else 1024L
peak32 <- vapply(1:2, function(th) product_gflops("float32", th, n = n_peak,
                                                  seconds = if (smoke) 0.01 else 0.5), 0)
cat(sprintf("peak: a %d^3 float32 product through nbi's C core, %.0f GF/s (1 thread), %.0f (2)\n",
            n_peak, peak32[1], peak32[2]))
cmp <- NULL
for (L in if (smoke) 50L else c(50L, 100L, 400L)) {
  spec <- nbi:::model_spec(rg_feat, flow_maf(blocks = 5, hidden = 128, mixture = 4), n_in = L,
                           d = d)
  xL <- matrix(rnorm(L * n), L, n)
  rates <- function(prec) {
    spec$precision <- prec
    vapply(1:2, function(th) train_rate(spec, xL, theta, batch, th, target), 0)
  }
  r32 <- rates("float32")
  n_par <- length(nbi:::model_init(spec, 1))
  gf <- max(r32) * rg_train_flops(rg_feat, L, n_par) / 1e9
  row <- data.frame(L = L, params = n_par,
                    `nbi float64` = round(max(rates("float64"))), `nbi float32` = round(max(r32)),
                    `f32 GF/s` = round(gf, 1), `% peak` = round(100 * gf / peak32[which.max(r32)]),
                    check.names = FALSE)
  tr <- if (nzchar(torch_python))
    run_torch_script(torch_python, torch_script,
                     c("--seq-len", L, "--channels", 1, "--batch", batch, "--seconds", target,
                       "--threads", if (smoke) "1" else "1,2", if (smoke) c("--warmup", 0)),
                     c("threads", "params", "train"))
  if (!is.null(tr)) {
    row$`torch params` <- tr$params[1]
    row$torch <- round(max(tr$train))
    row$`float64/torch` <- round(row$`nbi float64` / row$torch, 2)
    row$`float32/torch` <- round(row$`nbi float32` / row$torch, 2)
  }
  cmp <- if (is.null(cmp) || ncol(cmp) == ncol(row)) rbind(cmp, row) else row
}
print(cmp, row.names = FALSE)
if (!is.null(cmp$torch) && nrow(cmp)) cat("PyTorch", tr$torch[1], "| BLAS:", tr$blas[1], "\n")

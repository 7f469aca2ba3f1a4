/* Convolution benchmark: smoecast nn layers vs OpenBLAS sgemm and vs PyTorch, same run.
 *
 * Prints one named line per metric:
 *   openblas_corename                      OpenBLAS kernel in use
 *   sgemm_square_gflops_t<T>               OpenBLAS square sgemm (peer for GEMM efficiency)
 *   conv_gemm_fraction_<layer>_t<T>        conv fwd+bwd GEMM FLOPs / time, as a fraction of
 *                                          the square sgemm rate (target >= 0.75)
 *   ratio_vs_torch_<case>_t<T>             smoecast time / PyTorch time (target <= 0.8)
 *   cpu_ratio_vs_torch_<case>_t<T>         the same with process CPU time (robust to load)
 *   winograd_speedup_<layer>_t<T>          CPU time of the layer with the shifted-GEMM path
 *                                          forced / with the automatic choice (Winograd)
 * Winograd layers (3x3 and 5x5, stride 1, >= 8 channels) do fewer multiplications than the
 * direct-convolution FLOPs counted in conv_gemm_fraction, so for them it is an effective rate
 * and may exceed 1.
 * Cases: wb_cnn (WeatherBench CNN convs, 32x64, periodic, k5, 2->64->64->64->64->2, ELU,
 * batch 32, forward + backward) and conv3x3 (64->64, 64x128, zero pad, batch 8, fwd + bwd
 * including the input gradient). Times are the best of `reps` runs, taken over `rounds`
 * alternating rounds of smoecast and peer (the machine may be shared); the peer is
 * /usr/bin/python3 with torch.set_num_threads(T), run as a subprocess, and the benchmark
 * fails (exit 1) if it cannot run. Usage: bench_nn_conv [reps [rounds]] (default 5 3). */
#include "nn/activation.h"
#include "nn/conv2d.h"
#include "nn/nn_internal.h"
#include "nn/threads.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Best of n: the machine is shared, so the minimum is the least disturbed estimate of
 * both sides (the peer reports its minimum too). */
static double best(double *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, cmp_d);
    return t[0];
}

static float *falloc(size_t n)
{
    float *p = aligned_alloc(64, ((n * sizeof(float) + 63) / 64) * 64);
    if (!p) {
        fprintf(stderr, "bench_nn_conv: out of memory\n");
        exit(1);
    }
    return p;
}

static void fill(float *x, size_t n, unsigned seed, float scale)
{
    unsigned s = seed * 2654435761u + 1u;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = scale * ((float)(s >> 8) / 8388608.0f - 1.0f);
    }
}

/* ---------------------------------------------------------------- square sgemm peer */
static double sgemm_gflops(int n, int reps)
{
    float *a = falloc((size_t)n * n), *b = falloc((size_t)n * n), *c = falloc((size_t)n * n);
    fill(a, (size_t)n * n, 1, 1.0f);
    fill(b, (size_t)n * n, 2, 1.0f);
    double t[64];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        t[r] = now() - t0;
    }
    free(a); free(b); free(c);
    return 2.0 * n * (double)n * n / best(t, reps) / 1e9;
}

/* ---------------------------------------------------------------- a stack of convs */
#define MAXL 8
typedef struct {
    int nl;
    conv2d_shape s[MAXL];
    int act[MAXL]; /* ELU after layer? */
    int need_din0;
    float *w[MAXL], *b[MAXL], *gw[MAXL], *gb[MAXL];
    float *x[MAXL + 1];  /* x[0] input, x[l+1] conv output (pre-activation) */
    float *a[MAXL];      /* activation output of layer l (input of l+1) */
    float *gx[MAXL + 1]; /* gradients w.r.t. x[l] */
    float *ga[MAXL];
    float *gy, *ws;
} stack;

static size_t tsize(int b, int c, int h, int w) { return (size_t)b * c * h * w; }

static void stack_init(stack *st)
{
    size_t wsmax = 1;
    for (int l = 0; l < st->nl; l++) {
        conv2d_shape *s = &st->s[l];
        size_t nw = (size_t)s->c_out * s->c_in * s->kernel * s->kernel;
        st->w[l] = falloc(nw); st->gw[l] = falloc(nw);
        st->b[l] = falloc((size_t)s->c_out); st->gb[l] = falloc((size_t)s->c_out);
        fill(st->w[l], nw, 10 + (unsigned)l, 1.0f / sqrtf((float)(s->c_in * s->kernel * s->kernel)));
        fill(st->b[l], (size_t)s->c_out, 20 + (unsigned)l, 0.1f);
        size_t ni = tsize(s->batch, s->c_in, s->h, s->w);
        size_t no = tsize(s->batch, s->c_out, conv2d_out_h(s), conv2d_out_w(s));
        if (l == 0) {
            st->x[0] = falloc(ni);
            fill(st->x[0], ni, 3, 1.0f);
            st->gx[0] = falloc(ni);
        }
        st->x[l + 1] = falloc(no); st->gx[l + 1] = falloc(no);
        st->a[l] = falloc(no); st->ga[l] = falloc(no);
        size_t ws = conv2d_workspace_floats(s);
        if (ws > wsmax) wsmax = ws;
    }
    conv2d_shape *last = &st->s[st->nl - 1];
    size_t no = tsize(last->batch, last->c_out, conv2d_out_h(last), conv2d_out_w(last));
    st->gy = falloc(no);
    fill(st->gy, no, 4, 1.0f);
    st->ws = falloc(wsmax);
}

static void stack_free(stack *st)
{
    for (int l = 0; l < st->nl; l++) {
        free(st->w[l]); free(st->gw[l]); free(st->b[l]); free(st->gb[l]);
        free(st->x[l + 1]); free(st->gx[l + 1]); free(st->a[l]); free(st->ga[l]);
    }
    free(st->x[0]); free(st->gx[0]); free(st->gy); free(st->ws);
}

static void stack_step(stack *st)
{
    const float *in = st->x[0];
    for (int l = 0; l < st->nl; l++) {
        conv2d_shape *s = &st->s[l];
        conv2d_forward(s, st->x[l + 1], in, st->w[l], st->b[l], st->ws);
        size_t no = tsize(s->batch, s->c_out, conv2d_out_h(s), conv2d_out_w(s));
        if (st->act[l]) activation_forward(ACT_ELU, 1.0f, no, st->a[l], st->x[l + 1]);
        in = st->act[l] ? st->a[l] : st->x[l + 1];
    }
    for (int l = st->nl - 1; l >= 0; l--) {
        conv2d_shape *s = &st->s[l];
        size_t nw = (size_t)s->c_out * s->c_in * s->kernel * s->kernel;
        size_t no = tsize(s->batch, s->c_out, conv2d_out_h(s), conv2d_out_w(s));
        size_t ni = tsize(s->batch, s->c_in, s->h, s->w);
        memset(st->gw[l], 0, nw * sizeof(float));
        memset(st->gb[l], 0, (size_t)s->c_out * sizeof(float));
        const float *g = l == st->nl - 1 ? st->gy : st->ga[l];
        /* gradient w.r.t. the pre-activation output */
        float *gpre = st->gx[l + 1];
        if (st->act[l]) {
            memset(gpre, 0, no * sizeof(float));
            activation_backward(ACT_ELU, 1.0f, no, gpre, g, st->x[l + 1], st->a[l]);
            g = gpre;
        }
        const float *in_l = l == 0 ? st->x[0] : (st->act[l - 1] ? st->a[l - 1] : st->x[l]);
        float *din = NULL;
        if (l > 0) {
            din = st->ga[l - 1];
            memset(din, 0, ni * sizeof(float));
        } else if (st->need_din0) {
            din = st->gx[0];
            memset(din, 0, ni * sizeof(float));
        }
        conv2d_backward(s, din, st->gw[l], st->gb[l], g, in_l, st->w[l], st->ws);
    }
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Best wall time of reps steps; *cpu receives the best process CPU time (all threads). */
static double stack_time(stack *st, int reps, double *cpu)
{
    double t[64], c[64];
    stack_step(st);
    for (int r = 0; r < reps; r++) {
        double t0 = now(), c0 = cpu_now();
        stack_step(st);
        t[r] = now() - t0;
        c[r] = cpu_now() - c0;
    }
    *cpu = best(c, reps);
    return best(t, reps);
}

static double stack_gemm_flops(const stack *st)
{
    double f = 0.0;
    for (int l = 0; l < st->nl; l++) {
        const conv2d_shape *s = &st->s[l];
        double mnk = (double)s->c_out * s->c_in * s->kernel * s->kernel * s->batch *
                     conv2d_out_h(s) * conv2d_out_w(s);
        int passes = 2 + (l > 0 || st->need_din0);
        f += 2.0 * mnk * passes;
    }
    return f;
}

static void wb_cnn(stack *st)
{
    memset(st, 0, sizeof *st);
    const int ch[6] = {2, 64, 64, 64, 64, 2};
    st->nl = 5;
    for (int l = 0; l < 5; l++) {
        st->s[l] = (conv2d_shape){32, ch[l], 32, 64, ch[l + 1], 5, 1, PAD_PERIODIC_LON, 1};
        st->act[l] = l < 4;
    }
    stack_init(st);
}

static void one_layer(stack *st, conv2d_shape s, int need_din)
{
    memset(st, 0, sizeof *st);
    st->nl = 1;
    st->s[0] = s;
    st->need_din0 = need_din;
    stack_init(st);
}

/* ---------------------------------------------------------------- PyTorch peer */
static const char *peer_py =
    "import sys, time\n"
    "import torch\n"
    "import torch.nn.functional as F\n"
    "threads, reps = int(sys.argv[1]), int(sys.argv[2])\n"
    "torch.set_num_threads(threads)\n"
    "torch.manual_seed(0)\n"
    "def med(fn):\n"
    "    fn(); fn()\n"
    "    ts, cs = [], []\n"
    "    for _ in range(reps):\n"
    "        t0 = time.perf_counter(); c0 = time.process_time(); fn()\n"
    "        ts.append(time.perf_counter() - t0); cs.append(time.process_time() - c0)\n"
    "    return '%g %g' % (min(ts), min(cs))\n"
    "ch = [2, 64, 64, 64, 64, 2]\n"
    "ws = [(torch.randn(ch[i+1], ch[i], 5, 5) / (ch[i] * 25) ** 0.5).requires_grad_() for i in range(5)]\n"
    "bs = [(0.1 * torch.randn(ch[i+1])).requires_grad_() for i in range(5)]\n"
    "x = torch.randn(32, 2, 32, 64)\n"
    "gy = torch.randn(32, 2, 32, 64)\n"
    "def wb():\n"
    "    h = x\n"
    "    for i in range(5):\n"
    "        h = F.conv2d(F.pad(h, (2, 2, 0, 0), mode='circular'), ws[i], bs[i], padding=(2, 0))\n"
    "        if i < 4: h = F.elu(h)\n"
    "    for p in ws + bs: p.grad = None\n"
    "    h.backward(gy)\n"
    "print('wb_cnn', med(wb))\n"
    "def layer(B, ci, H, W, co, k, pad):\n"
    "    w = (torch.randn(co, ci, k, k) / (ci * k * k) ** 0.5).requires_grad_()\n"
    "    b = (0.1 * torch.randn(co)).requires_grad_()\n"
    "    xi = torch.randn(B, ci, H, W).requires_grad_()\n"
    "    p = k // 2\n"
    "    def run():\n"
    "        xp = F.pad(xi, (p, p, 0, 0), mode='circular') if pad == 'periodic' else xi\n"
    "        y = F.conv2d(xp, w, b, padding=(p, 0) if pad == 'periodic' else p)\n"
    "        for q in (w, b, xi): q.grad = None\n"
    "        y.backward(gl[0])\n"
    "    with torch.no_grad():\n"
    "        gl = [torch.randn(B, co, H, W)]\n"
    "    return med(run)\n"
    "print('conv3x3', layer(8, 64, 64, 128, 64, 3, 'zero'))\n"
    "print('wb_conv64', layer(32, 64, 32, 64, 64, 5, 'periodic'))\n";

typedef struct {
    double wb_cnn, conv3x3, wb_conv64;    /* best wall time */
    double cwb_cnn, cconv3x3, cwb_conv64; /* best process CPU time */
} peer_times;

static int run_peer(int threads, int reps, peer_times *pt)
{
    char path[] = "/tmp/bench_nn_conv_peer_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return -1;
    size_t len = strlen(peer_py);
    if (write(fd, peer_py, len) != (ssize_t)len) {
        close(fd);
        unlink(path);
        return -1;
    }
    close(fd);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=%d /usr/bin/python3 %s %d %d", threads, path, threads, reps);
    FILE *p = popen(cmd, "r");
    int got = 0;
    if (p) {
        char line[256], name[64];
        double v, c;
        while (fgets(line, sizeof line, p)) {
            if (sscanf(line, "%63s %lf %lf", name, &v, &c) != 3) continue;
            if (strcmp(name, "wb_cnn") == 0) { pt->wb_cnn = v; pt->cwb_cnn = c; got |= 1; }
            if (strcmp(name, "conv3x3") == 0) { pt->conv3x3 = v; pt->cconv3x3 = c; got |= 2; }
            if (strcmp(name, "wb_conv64") == 0) { pt->wb_conv64 = v; pt->cwb_conv64 = c; got |= 4; }
        }
        if (pclose(p) != 0) got = 0;
    }
    unlink(path);
    return got == 7 ? 0 : -1;
}

static double min2(double a, double b) { return a < b ? a : b; }

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 5, rounds = argc > 2 ? atoi(argv[2]) : 3;
    if (reps < 1) reps = 1;
    if (reps > 64) reps = 64;
    if (rounds < 1) rounds = 1;
    printf("openblas_corename %s\n", openblas_get_corename());
    const char *ct = getenv("OPENBLAS_CORETYPE");
    if (ct) printf("note: OPENBLAS_CORETYPE=%s is set (run with env -u OPENBLAS_CORETYPE)\n", ct);
    for (int threads = 1; threads <= 2; threads++) {
        peer_times pt = {1e30, 1e30, 1e30, 1e30, 1e30, 1e30};
        double gf = 0, t_k5 = 1e30, t_3 = 1e30, t_cnn = 1e30, c_k5 = 1e30, c_3 = 1e30, c_cnn = 1e30, c;
        double f_k5 = 0, f_3 = 0, f_cnn = 0, cs_k5 = 1e30, cs_3 = 1e30;
        for (int round = 0; round < rounds; round++) {
            peer_times p1 = {0, 0, 0, 0, 0, 0};
            if (run_peer(threads, reps, &p1) != 0) {
                fprintf(stderr, "bench_nn_conv: the PyTorch peer (/usr/bin/python3 with torch) failed to run\n");
                return 1;
            }
            pt.wb_cnn = min2(pt.wb_cnn, p1.wb_cnn);
            pt.conv3x3 = min2(pt.conv3x3, p1.conv3x3);
            pt.wb_conv64 = min2(pt.wb_conv64, p1.wb_conv64);
            pt.cwb_cnn = min2(pt.cwb_cnn, p1.cwb_cnn);
            pt.cconv3x3 = min2(pt.cconv3x3, p1.cconv3x3);
            pt.cwb_conv64 = min2(pt.cwb_conv64, p1.cwb_conv64);
            nn_set_threads(threads);
            double g = sgemm_gflops(1536, reps);
            if (g > gf) gf = g;
            stack st;
            one_layer(&st, (conv2d_shape){32, 64, 32, 64, 64, 5, 1, PAD_PERIODIC_LON, 1}, 1);
            t_k5 = min2(t_k5, stack_time(&st, reps, &c));
            c_k5 = min2(c_k5, c);
            f_k5 = stack_gemm_flops(&st);
            stack_free(&st);
            one_layer(&st, (conv2d_shape){8, 64, 64, 128, 64, 3, 1, PAD_ZERO, 1}, 1);
            t_3 = min2(t_3, stack_time(&st, reps, &c));
            c_3 = min2(c_3, c);
            f_3 = stack_gemm_flops(&st);
            stack_free(&st);
            /* the same layers on the shifted-GEMM path (no Winograd) */
            nn_conv2d_set_algo(NN_CONV_SHIFT);
            one_layer(&st, (conv2d_shape){32, 64, 32, 64, 64, 5, 1, PAD_PERIODIC_LON, 1}, 1);
            stack_time(&st, reps, &c);
            cs_k5 = min2(cs_k5, c);
            stack_free(&st);
            one_layer(&st, (conv2d_shape){8, 64, 64, 128, 64, 3, 1, PAD_ZERO, 1}, 1);
            stack_time(&st, reps, &c);
            cs_3 = min2(cs_3, c);
            stack_free(&st);
            nn_conv2d_set_algo(NN_CONV_AUTO);
            wb_cnn(&st);
            t_cnn = min2(t_cnn, stack_time(&st, reps, &c));
            c_cnn = min2(c_cnn, c);
            f_cnn = stack_gemm_flops(&st);
            stack_free(&st);
        }
        printf("sgemm_square_gflops_t%d %.1f\n", threads, gf);
        printf("conv_gemm_fraction_wb_conv64_k5_t%d %.3f\n", threads, f_k5 / t_k5 / 1e9 / gf);
        printf("conv_gemm_fraction_conv3x3_t%d %.3f\n", threads, f_3 / t_3 / 1e9 / gf);
        printf("conv_gemm_fraction_wb_cnn_t%d %.3f\n", threads, f_cnn / t_cnn / 1e9 / gf);
        printf("ratio_vs_torch_wb_conv64_k5_t%d %.3f\n", threads, t_k5 / pt.wb_conv64);
        printf("ratio_vs_torch_conv3x3_t%d %.3f\n", threads, t_3 / pt.conv3x3);
        printf("ratio_vs_torch_wb_cnn_t%d %.3f\n", threads, t_cnn / pt.wb_cnn);
        /* CPU-time ratios: less sensitive to other processes on a shared machine (with one
         * thread they measure the same work; with two they include spin-waiting) */
        printf("cpu_ratio_vs_torch_wb_conv64_k5_t%d %.3f\n", threads, c_k5 / pt.cwb_conv64);
        printf("cpu_ratio_vs_torch_conv3x3_t%d %.3f\n", threads, c_3 / pt.cconv3x3);
        printf("cpu_ratio_vs_torch_wb_cnn_t%d %.3f\n", threads, c_cnn / pt.cwb_cnn);
        printf("winograd_speedup_wb_conv64_k5_t%d %.3f\n", threads, cs_k5 / c_k5);
        printf("winograd_speedup_conv3x3_t%d %.3f\n", threads, cs_3 / c_3);
        printf("time_ms_t%d wb_conv64_k5 %.1f/%.1f conv3x3 %.1f/%.1f wb_cnn %.1f/%.1f (smoecast/torch)\n",
               threads, 1e3 * t_k5, 1e3 * pt.wb_conv64, 1e3 * t_3, 1e3 * pt.conv3x3, 1e3 * t_cnn,
               1e3 * pt.wb_cnn);
        fflush(stdout);
    }
    return 0;
}

/* Benchmark: one training step (forward + MSE + backward + Adam) of whole models built by
 * src/model/builder.c, against PyTorch (/usr/bin/python3, Debian python3-torch) on identical
 * shapes, at 1 and 2 threads, in the same run:
 *   cnn   the WeatherBench direct CNN: 32 x 64 grid, 2 in / 2 out, channels [64,64,64,64] + out,
 *         kernel 5, ELU, periodic-longitude padding, batch 32
 *   unet  the ENS-10 U-Net: 64 x 128 grid, 2 in / 2 out, levels 32/64/128, kernel 3, BatchNorm,
 *         ReLU, 2x2 max-pool, 2x2 stride-2 transposed convs, periodic-longitude padding, batch 8
 * Each measurement runs in its own process (this program re-executed with --child, or python3), and the
 * parent reads the child's peak RSS with wait4(); step time is the median of the timed steps
 * after warm-up. The two are run alternately `rounds` times and the best of each is kept.
 * One line per metric:
 *   nn_train.<model>.t<threads>.time_ratio  smoecast/torch step time   (target <= 0.8)
 *   nn_train.<model>.t<threads>.cpu_ratio   smoecast/torch process CPU time per step (steadier on
 *                                           a shared machine; at 2 threads it counts spin-waits)
 *   nn_train.<model>.t<threads>.rss_ratio   smoecast/torch peak RSS    (target <= 1.0)
 * Run as: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE build/bench/bench_nn_train [rounds]
 * (BENCH_PROFILE=1 also prints smoecast's per-layer times to stderr)
 * Fails (exit 1) when the PyTorch peer cannot run. */
#define _DEFAULT_SOURCE 1 /* wait4 */
#include <cblas.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "core/rng.h"
#include "model/builder.h"
#include "nn/loss.h"
#include "nn/optim.h"
#include "nn/threads.h"

typedef struct {
    const char *name;
    int n_ov;
    const char *ov[8];
    int c_in, c_out, h, w, batch;
    int warmup, steps;
} bench_case;

static const bench_case CASES[] = {
    {"cnn_wb_32x64_b32", 3, {"model.architecture=cnn", "model.channels=[64, 64, 64, 64]", "model.kernel=5"},
     2, 2, 32, 64, 32, 1, 4},
    {"unet_32_64_128_64x128_b8", 6,
     {"model.architecture=unet", "model.channels=[32, 64, 128]", "model.kernel=3", "model.batchnorm=true",
      "model.activation=relu", "model.padding=periodic_lon"},
     2, 2, 64, 128, 8, 1, 5},
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The smoecast step, in the child: prints nothing, writes the median step time to fd. */
static int smoecast_child(const bench_case *c, int threads, int fd)
{
    nn_set_threads(threads);
    sm_config *cfg = NULL;
    if (config_load(NULL, c->n_ov, (char *const *)c->ov, &cfg)) return 1;
    sm_model *m = NULL;
    if (model_build_dims(&cfg->model, c->c_in, c->c_out, c->h, c->w, 1, c->batch, 1, 1, &m)) return 1;
    optim_config oc = optim_default_config(OPTIM_ADAM);
    oc.lr = 1e-4;
    optim *opt = NULL;
    if (optim_create(&opt, model_params(m), &oc)) return 1;
    size_t nin = (size_t)c->batch * c->c_in * c->h * c->w;
    size_t nout = (size_t)c->batch * model_c_out(m) * model_out_h(m) * model_out_w(m);
    float *target = malloc(nout * sizeof(float));
    rng_t r;
    rng_seed(&r, 5, 1);
    for (size_t i = 0; i < nin; i++) model_input(m)[i] = (float)rng_normal(&r);
    for (size_t i = 0; i < nout; i++) target[i] = (float)rng_normal(&r);
    double times[64], cpu[64];
    int n = 0;
    for (int s = 0; s < c->warmup + c->steps; s++) {
        double t0 = now(), c0 = cpu_now();
        model_zero_grad(m);
        model_forward(m, 1, &r);
        float *dy = model_output_grad(m);
        volatile double loss = loss_mse_forward(model_output(m), target, nout);
        (void)loss;
        memset(dy, 0, nout * sizeof(float));
        loss_mse_backward(dy, model_output(m), target, nout, 1.0);
        model_backward(m);
        optim_step(opt);
        if (s >= c->warmup && n < 64) {
            cpu[n] = cpu_now() - c0;
            times[n++] = now() - t0;
        }
        if (s + 1 == c->warmup && getenv("BENCH_PROFILE")) model_set_profile(m, 1);
    }
    if (getenv("BENCH_PROFILE")) model_profile_print(m, stderr);
    qsort(times, (size_t)n, sizeof times[0], cmp_double);
    qsort(cpu, (size_t)n, sizeof cpu[0], cmp_double);
    double med[2] = {times[n / 2], cpu[n / 2]};
    if (write(fd, med, sizeof med) != (ssize_t)sizeof med) return 1;
    free(target);
    optim_free(opt);
    model_free(m);
    config_free(cfg);
    return 0;
}

static const char *TORCH_SCRIPT =
    "import sys, time, torch\n"
    "import torch.nn.functional as F\n"
    "arch, threads, B, cin, cout, H, W, warm, steps = sys.argv[1], *map(int, sys.argv[2:10])\n"
    "torch.set_num_threads(threads)\n"
    "torch.manual_seed(0)\n"
    "class PConv(torch.nn.Module):\n"
    "    def __init__(s, ci, co, k):\n"
    "        super().__init__(); s.p = k // 2; s.c = torch.nn.Conv2d(ci, co, k, padding=(s.p, 0))\n"
    "    def forward(s, x):\n"
    "        return s.c(F.pad(x, (s.p, s.p, 0, 0), mode='circular') if s.p else x)\n"
    "if arch == 'cnn':\n"
    "    L = []\n"
    "    ci = cin\n"
    "    for c in [64, 64, 64, 64]:\n"
    "        L += [PConv(ci, c, 5), torch.nn.ELU()]; ci = c\n"
    "    L += [PConv(ci, cout, 5)]\n"
    "    net = torch.nn.Sequential(*L)\n"
    "else:\n"
    "    def unit(ci, co): return torch.nn.Sequential(PConv(ci, co, 3), torch.nn.BatchNorm2d(co), torch.nn.ReLU())\n"
    "    class UNet(torch.nn.Module):\n"
    "        def __init__(s, ch):\n"
    "            super().__init__()\n"
    "            s.enc = torch.nn.ModuleList(); ci = cin\n"
    "            for c in ch: s.enc.append(torch.nn.Sequential(unit(ci, c), unit(c, c))); ci = c\n"
    "            s.up = torch.nn.ModuleList(); s.dec = torch.nn.ModuleList()\n"
    "            for i in range(len(ch) - 2, -1, -1):\n"
    "                s.up.append(torch.nn.ConvTranspose2d(ch[i + 1], ch[i], 2, stride=2))\n"
    "                s.dec.append(torch.nn.Sequential(unit(2 * ch[i], ch[i]), unit(ch[i], ch[i])))\n"
    "            s.head = torch.nn.Conv2d(ch[0], cout, 1)\n"
    "        def forward(s, x):\n"
    "            sk = []\n"
    "            for i, e in enumerate(s.enc):\n"
    "                if i: x = F.max_pool2d(x, 2)\n"
    "                x = e(x); sk.append(x)\n"
    "            for j, (u, d) in enumerate(zip(s.up, s.dec)):\n"
    "                x = d(torch.cat([sk[len(sk) - 2 - j], u(x)], 1))\n"
    "            return s.head(x)\n"
    "    net = UNet([32, 64, 128])\n"
    "opt = torch.optim.Adam(net.parameters(), lr=1e-4)\n"
    "x = torch.randn(B, cin, H, W); y = torch.randn(B, cout, H, W)\n"
    "ts = []; cs = []\n"
    "for s in range(warm + steps):\n"
    "    t0 = time.perf_counter(); c0 = time.process_time()\n"
    "    opt.zero_grad(set_to_none=True)\n"
    "    loss = F.mse_loss(net(x), y)\n"
    "    loss.backward()\n"
    "    opt.step()\n"
    "    if s >= warm: ts.append(time.perf_counter() - t0); cs.append(time.process_time() - c0)\n"
    "ts.sort(); cs.sort()\n"
    "print('step_s', ts[len(ts) // 2], cs[len(cs) // 2], flush=True)\n";

/* Runs a child; returns 0 and fills the median step wall time and process CPU time (s) and the
 * child's peak RSS (MB). */
static int run_child(const bench_case *c, int threads, int torch, double *t, double *cpu,
                     double *rss_mb)
{
    int fds[2];
    if (pipe(fds) != 0) return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 1);
        if (!torch) {
            /* a fresh process image (no OpenBLAS/OpenMP threads inherited through fork) */
            char ci[16], th[16];
            snprintf(ci, sizeof ci, "%d", (int)(c - CASES));
            snprintf(th, sizeof th, "%d", threads);
            execl("/proc/self/exe", "bench_nn_train", "--child", ci, th, (char *)NULL);
            _exit(127);
        }
        char a[9][32];
        snprintf(a[0], 32, "%s", strncmp(c->name, "cnn", 3) == 0 ? "cnn" : "unet");
        int v[8] = {threads, c->batch, c->c_in, c->c_out, c->h, c->w, c->warmup, c->steps};
        for (int i = 0; i < 8; i++) snprintf(a[i + 1], 32, "%d", v[i]);
        char thr[16];
        snprintf(thr, sizeof thr, "%d", threads);
        setenv("OMP_NUM_THREADS", thr, 1);
        execl("/usr/bin/python3", "python3", "-c", TORCH_SCRIPT, a[0], a[1], a[2], a[3], a[4], a[5], a[6],
              a[7], a[8], (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char buf[256];
    size_t got = 0;
    ssize_t k;
    while (got < sizeof buf - 1 && (k = read(fds[0], buf + got, sizeof buf - 1 - got)) > 0) got += (size_t)k;
    buf[got] = 0;
    close(fds[0]);
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) return -1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return -1;
    *rss_mb = ru.ru_maxrss / 1024.0;
    if (torch) {
        if (sscanf(buf, "step_s %lf %lf", t, cpu) != 2) return -1;
    } else {
        if (got != 2 * sizeof(double)) return -1;
        memcpy(t, buf, sizeof(double));
        memcpy(cpu, buf + sizeof(double), sizeof(double));
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--child") == 0)
        return smoecast_child(&CASES[atoi(argv[2])], atoi(argv[3]), 1);
    int rounds = argc > 1 ? atoi(argv[1]) : 1;
    if (rounds < 1) rounds = 1;
    printf("openblas_corename: %s\n", openblas_get_corename());
    const char *ct = getenv("OPENBLAS_CORETYPE");
    if (ct) printf("warning: OPENBLAS_CORETYPE=%s is set; run with env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE\n", ct);
    for (size_t ci = 0; ci < sizeof CASES / sizeof CASES[0]; ci++) {
        const bench_case *c = &CASES[ci];
        for (int threads = 1; threads <= 2; threads++) {
            double ts = 1e30, tt = 1e30, cs = 1e30, ctt = 1e30, rs = 0, rt = 0;
            for (int r = 0; r < rounds; r++) {
                double t, cpu, rss;
                if (run_child(c, threads, 1, &t, &cpu, &rss) != 0) {
                    fprintf(stderr, "bench_nn_train: the PyTorch peer (/usr/bin/python3 with torch) failed "
                            "for %s at %d threads\n", c->name, threads);
                    return 1;
                }
                if (t < tt) tt = t;
                if (cpu < ctt) ctt = cpu;
                if (rss > rt) rt = rss;
                if (run_child(c, threads, 0, &t, &cpu, &rss) != 0) {
                    fprintf(stderr, "bench_nn_train: the smoecast step failed for %s at %d threads\n", c->name,
                            threads);
                    return 1;
                }
                if (t < ts) ts = t;
                if (cpu < cs) cs = cpu;
                if (rss > rs) rs = rss;
            }
            printf("nn_train.%s.t%d.time_ratio %.3f (smoecast %.1f ms, torch %.1f ms per step; target <= 0.8)\n",
                   c->name, threads, ts / tt, 1e3 * ts, 1e3 * tt);
            printf("nn_train.%s.t%d.cpu_ratio %.3f (smoecast %.1f ms, torch %.1f ms process CPU per step)\n",
                   c->name, threads, cs / ctt, 1e3 * cs, 1e3 * ctt);
            printf("nn_train.%s.t%d.rss_ratio %.3f (smoecast %.0f MB, torch %.0f MB peak RSS; target <= 1.0)\n",
                   c->name, threads, rs / rt, rs, rt);
            fflush(stdout);
        }
    }
    return 0;
}

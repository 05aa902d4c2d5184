"""PyTorch mirror of plugins/generative/lib/gan.ts + gan-train.ts (WGAN-GP, same networks, same loss).

Run by `scripts/train-gan.ts --engine pytorch`, which prepares the training images (the same split and
preprocessing as the TF.js trainer), then loads the exported generator in TF.js and checks that it gives
the same pixels as here for the same latents before writing it. On this machine's CPU, PyTorch computes a
WGAN-GP critic step several times faster than tfjs-wasm (see ../shared/NOTES.md), so the default generator
gets many more iterations for the same time budget.

Layout conversions (TF.js is NHWC, PyTorch NCHW):
  g.fc.w   = fc.weight.T                    [z, 16*c0]  (the 16*c0 vector is read as 4x4xc0, HWC)
  g.upK.w  = upK.weight.permute(2, 3, 1, 0) [kh, kw, out, in] (conv2dTranspose filter)
Padding: tfjs 'same' for a 4x4 stride-2 (transposed) conv on even sizes pads 1 on each side = padding=1.
"""
import argparse
import json
import math
import os
import struct
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument('--data', required=True, help='raw little-endian float32, count x size x size x 3 in [-1, 1] (HWC)')
p.add_argument('--count', type=int, required=True)
p.add_argument('--size', type=int, default=32)
p.add_argument('--z-dim', type=int, default=64)
p.add_argument('--ngf', type=int, default=32)
p.add_argument('--ndf', type=int, default=16)
p.add_argument('--batch', type=int, default=16)
p.add_argument('--iterations', type=int, default=3000)
p.add_argument('--max-minutes', type=float, default=None)
p.add_argument('--seed', type=int, default=7)
p.add_argument('--n-critic', type=int, default=5)
p.add_argument('--lam', type=float, default=10.0)
p.add_argument('--lr', type=float, default=1e-4)
p.add_argument('--beta1', type=float, default=0.0)
p.add_argument('--beta2', type=float, default=0.9)
p.add_argument('--checkpoint', required=True)
p.add_argument('--checkpoint-every', type=int, default=100)
p.add_argument('--out', required=True, help='folder for generator.sgan, history.json, parity.json')
args = p.parse_args()

torch.set_num_threads(1)
torch.manual_seed(args.seed)
rng = np.random.default_rng(args.seed)
S = args.size


def pixel_norm(x):
    return x / torch.sqrt(torch.mean(x * x, dim=1, keepdim=True) + 1e-8)


class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        n = int(math.log2(S / 4))
        self.ch = [args.ngf * 2 ** (n - 1 - i) for i in range(n)]
        self.fc = nn.Linear(args.z_dim, 16 * self.ch[0])
        self.ups = nn.ModuleList(
            [nn.ConvTranspose2d(self.ch[i], self.ch[i + 1] if i + 1 < n else 3, 4, 2, 1) for i in range(n)])

    def forward(self, z):
        x = self.fc(z).view(-1, 4, 4, self.ch[0]).permute(0, 3, 1, 2)
        x = pixel_norm(F.relu(x))
        for i, up in enumerate(self.ups):
            x = up(x)
            x = pixel_norm(F.relu(x)) if i + 1 < len(self.ups) else torch.tanh(x)
        return x


class Critic(nn.Module):
    def __init__(self):
        super().__init__()
        n = int(math.log2(S / 4))
        ch = [args.ndf * 2 ** i for i in range(n)]
        self.convs = nn.ModuleList([nn.Conv2d(3 if i == 0 else ch[i - 1], ch[i], 4, 2, 1) for i in range(n)])
        self.fc = nn.Linear(16 * ch[-1], 1)

    def forward(self, x):
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
        return self.fc(x.permute(0, 2, 3, 1).reshape(x.shape[0], -1))


def init(m):
    # DCGAN init, as in gan.ts: N(0, 0.02) weights, zero biases.
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        nn.init.zeros_(m.bias)


G, D = Generator(), Critic()
G.apply(init)
D.apply(init)
opt_g = torch.optim.Adam(G.parameters(), lr=args.lr, betas=(args.beta1, args.beta2))
opt_d = torch.optim.Adam(D.parameters(), lr=args.lr, betas=(args.beta1, args.beta2))

data = torch.from_numpy(np.fromfile(args.data, dtype='<f4').reshape(args.count, S, S, 3)).permute(0, 3, 1, 2).contiguous()

it, history, elapsed_before = 0, [], 0.0
if os.path.exists(args.checkpoint):
    ck = torch.load(args.checkpoint)
    G.load_state_dict(ck['G'])
    D.load_state_dict(ck['D'])
    opt_g.load_state_dict(ck['opt_g'])
    opt_d.load_state_dict(ck['opt_d'])
    it, history, elapsed_before = ck['it'], ck['history'], ck['elapsed']
    torch.set_rng_state(ck['torch_rng'])
    rng.bit_generator.state = ck['np_rng']
    print(f'resumed at iteration {it}', flush=True)

started = time.time()
deadline = started + args.max_minutes * 60 if args.max_minutes else float('inf')


def save_checkpoint():
    tmp = args.checkpoint + '.tmp'
    torch.save({'G': G.state_dict(), 'D': D.state_dict(), 'opt_g': opt_g.state_dict(), 'opt_d': opt_d.state_dict(),
                'it': it, 'history': history, 'elapsed': elapsed_before + time.time() - started,
                'torch_rng': torch.get_rng_state(), 'np_rng': rng.bit_generator.state}, tmp)
    os.replace(tmp, args.checkpoint)


def real_batch():
    idx = rng.integers(0, args.count, args.batch)
    x = data[idx].clone()
    flip = torch.from_numpy(rng.random(args.batch) < 0.5)
    x[flip] = x[flip].flip(3)  # sneakers face both ways in the data
    return x


stopped_by = 'iterations'
while it < args.iterations:
    if time.time() >= deadline:
        stopped_by = 'time'
        break
    for _ in range(args.n_critic):
        real = real_batch()
        with torch.no_grad():
            fake = G(torch.randn(args.batch, args.z_dim))
        eps = torch.rand(args.batch, 1, 1, 1)
        x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
        grad, = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
        gp = ((grad.flatten(1).pow(2).sum(1) + 1e-12).sqrt() - 1).pow(2).mean()
        d_real, d_fake = D(real).mean(), D(fake).mean()
        loss_d = d_fake - d_real + args.lam * gp
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
    loss_g = -D(G(torch.randn(args.batch, args.z_dim))).mean()
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    it += 1
    history.append({'iteration': it, 'wasserstein': float(d_real - d_fake), 'gradientPenalty': float(gp),
                    'generatorLoss': float(loss_g)})
    if it % 10 == 0 or it <= 3:
        h = history[-1]
        el = (elapsed_before + time.time() - started) / 60
        print(f"it {it}/{args.iterations} W {h['wasserstein']:.3f} GP {h['gradientPenalty']:.3f} "
              f"G {h['generatorLoss']:.3f} elapsed {el:.1f} min", flush=True)
    if it % args.checkpoint_every == 0:
        save_checkpoint()

save_checkpoint()
elapsed = elapsed_before + time.time() - started

# Export the generator in the SGAN format of plugins/generative/lib/gan-io.ts.
tensors = [('g.fc.w', G.fc.weight.detach().t().contiguous()), ('g.fc.b', G.fc.bias.detach())]
for i, up in enumerate(G.ups):
    tensors.append((f'g.up{i}.w', up.weight.detach().permute(2, 3, 1, 0).contiguous()))
    tensors.append((f'g.up{i}.b', up.bias.detach()))
entries, blobs, offset = [], [], 0
for name, t in tensors:
    arr = t.numpy().astype('<f4')
    entries.append({'name': name, 'shape': list(arr.shape), 'offset': offset})
    blobs.append(arr.tobytes())
    offset += arr.nbytes
header = {'format': 'solescope-gan', 'version': 1, 'kind': 'generator',
          'arch': {'size': S, 'zDim': args.z_dim, 'ngf': args.ngf, 'ndf': args.ndf},
          'meta': {'iterations': it, 'seed': args.seed, 'batchSize': args.batch, 'trainingImages': args.count,
                   'trainingMs': round(elapsed * 1000), 'engine': f'pytorch {torch.__version__} (1 thread)',
                   'hyper': {'lr': args.lr, 'beta1': args.beta1, 'beta2': args.beta2, 'lambda': args.lam,
                             'nCritic': args.n_critic}},
          'tensors': entries}
hj = json.dumps(header).encode('utf8')
os.makedirs(args.out, exist_ok=True)
with open(os.path.join(args.out, 'generator.sgan'), 'wb') as f:
    f.write(b'SGAN' + struct.pack('<I', len(hj)) + hj + b''.join(blobs))

# Parity data: the TS side feeds the same latents through the exported file in TF.js and compares.
G.eval()
z = torch.from_numpy(np.random.default_rng(123).standard_normal((4, args.z_dim)).astype('<f4'))
with torch.no_grad():
    out = G(z).permute(0, 2, 3, 1).contiguous().numpy()
with open(os.path.join(args.out, 'parity.json'), 'w') as f:
    json.dump({'z': z.numpy().ravel().tolist(), 'out': out.ravel().tolist()}, f)
with open(os.path.join(args.out, 'history.json'), 'w') as f:
    json.dump({'history': history, 'iterations': it, 'elapsedMs': round(elapsed * 1000), 'stoppedBy': stopped_by}, f)
print(f'done: {it} iterations in {elapsed / 60:.1f} min ({stopped_by})', flush=True)

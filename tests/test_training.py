"""The train step: same numbers unmapped / pmap / shard_map, vmap == separate runs, scan == steps."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from flax import nnx

from lsgan_jax import models
from lsgan_jax.data import mixtures
from lsgan_jax.training import runners
from lsgan_jax.training.state import (
    Hparams,
    init_state,
    make_hparams,
    make_optimizer,
    set_learning_rate,
    stack,
    unstack,
)
from lsgan_jax.training.step import StepSpec, make_train_step

BATCH = 32
MIX = mixtures.ring()


def _opt(lr):
    return make_optimizer(
        ml_collections.ConfigDict({"name": "adam", "lr": lr, "b1": 0.5, "b2": 0.999, "eps": 1e-8})
    )


def _build(axis_name=None, *, update="alternating", n_d=1, loss_names=("lsgan",), seed=0):
    """A BatchNorm generator (PacGAN-style) and an MLP discriminator, small."""
    g = models.create(
        "pacgan_g", rngs=nnx.Rngs(params=seed), axis_name=axis_name, hidden=16, depth=2
    )
    d = models.create("mixture_mlp_d", rngs=nnx.Rngs(params=seed + 100), hidden=16)
    g_tx, d_tx = _opt(1e-3), _opt(1e-3)
    spec = StepSpec(
        g_graphdef=nnx.graphdef(g),
        d_graphdef=nnx.graphdef(d),
        g_tx=g_tx,
        d_tx=d_tx,
        batch_size=BATCH,
        latent_dim=g.latent_dim,
        latent_dist=g.latent_dist,
        loss_names=loss_names,
        update=update,
        n_d=n_d,
        sample_real=lambda k, n: mixtures.sample(MIX, k, n),
    )
    state = init_state(g, d, g_tx, d_tx, jax.random.PRNGKey(seed))
    return spec, state


def _build_dcgan(axis_name=None):
    """BatchNorm in both G and D (D's statistics must sync too), 16x16 images."""
    g = models.create(
        "dcgan_g",
        rngs=nnx.Rngs(params=0),
        axis_name=axis_name,
        image_size=16,
        channels=1,
        base_features=4,
        latent_dim=8,
    )
    d = models.create(
        "dcgan_d",
        rngs=nnx.Rngs(params=1),
        axis_name=axis_name,
        image_size=16,
        channels=1,
        base_features=4,
    )
    # SGD, not Adam: conv biases that feed a BatchNorm have an analytic gradient of exactly 0,
    # and Adam's first step would turn their float round-off (different on 1 vs 8 devices)
    # into updates of ±lr.
    sgd = ml_collections.ConfigDict({"name": "sgd", "lr": 0.1})
    g_tx, d_tx = make_optimizer(sgd), make_optimizer(sgd)
    spec = StepSpec(
        g_graphdef=nnx.graphdef(g),
        d_graphdef=nnx.graphdef(d),
        g_tx=g_tx,
        d_tx=d_tx,
        batch_size=BATCH,
        latent_dim=g.latent_dim,
        latent_dist=g.latent_dist,
    )
    return spec, init_state(g, d, g_tx, d_tx, jax.random.PRNGKey(0))


def test_batchnorm_in_both_nets_syncs_across_devices():
    spec1, state1 = _build_dcgan(None)
    spec8, state8 = _build_dcgan(runners.DATA_AXIS)
    batch = {"image": jax.random.uniform(jax.random.PRNGKey(3), (BATCH, 16, 16, 1), minval=-1)}
    hp = _hp()
    hp = hp._replace(lr_g=jnp.float32(0.1), lr_d=jnp.float32(0.1))
    s1, m1 = runners.single(make_train_step(spec1), donate=False)(state1, batch, hp)
    mesh = runners.make_mesh(8)
    run8 = runners.data_parallel(make_train_step(spec8), mesh, global_batch=BATCH, donate=False)
    s8, m8 = run8(runners.replicate(state8, mesh), runners.shard_batch(batch, mesh), hp)
    _close(s1, s8, atol=5e-5)
    _close(m1, m8, atol=5e-5)
    # D's BatchNorm running statistics moved (and agree across the two runners).
    assert not np.allclose(jax.tree.leaves(s1.d_rest)[0], jax.tree.leaves(state1.d_rest)[0])


def _hp(**kw):
    return make_hparams(lr_g=1e-3, lr_d=2e-3, **kw)


def _close(a, b, atol=2e-5):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=1e-4)


def _batch():
    return {"image": mixtures.sample(MIX, jax.random.PRNGKey(7), BATCH)}


@pytest.mark.parametrize("update", ["alternating", "simultaneous"])
def test_unmapped_pmap_shard_map_agree(update):
    """Two steps with sync BatchNorm: the per-device step on 8 devices == one device."""
    assert jax.device_count() == 8
    spec1, state1 = _build(None, update=update)
    spec8, state8 = _build(runners.DATA_AXIS, update=update)
    hp = _hp()
    batch = _batch()

    single = runners.single(make_train_step(spec1), donate=False)
    s1, m1 = single(state1, batch, hp)
    s1, m1 = single(s1, batch, hp)

    mesh = runners.make_mesh(8)
    sharded = runners.data_parallel(make_train_step(spec8), mesh, global_batch=BATCH, donate=False)
    s8, m8 = sharded(runners.replicate(state8, mesh), runners.shard_batch(batch, mesh), hp)
    s8, m8 = sharded(s8, runners.shard_batch(batch, mesh), hp)

    pm = runners.pmap(make_train_step(spec8), global_batch=BATCH)
    sp, mp = pm(state8, batch, hp)
    sp, mp = pm(sp, batch, hp)

    # Parameters, BatchNorm running statistics and optimizer moments all agree.
    _close(s1, s8)
    _close(s1, sp)
    _close(m1, m8)
    _close(m1, mp)
    # ...and training actually moved them (the comparison is not vacuous).
    assert not np.allclose(jax.tree.leaves(s1.g_params)[0], jax.tree.leaves(state1.g_params)[0])


def test_on_device_sampling_is_device_count_invariant():
    """batch=None: real data and latents are drawn globally and sliced per device."""
    spec1, state1 = _build(None, update="simultaneous")
    spec8, state8 = _build(runners.DATA_AXIS, update="simultaneous")
    hp = _hp()
    run1 = runners.single(make_train_step(spec1), scan_steps=3, donate=False)
    s1, m1 = run1(state1, hp)
    mesh = runners.make_mesh(8)
    run8 = runners.data_parallel(
        make_train_step(spec8), mesh, global_batch=BATCH, scan_steps=3, donate=False
    )
    s8, m8 = run8(runners.replicate(state8, mesh), hp)
    _close(s1, s8)
    assert m1["d_loss"].shape == (3,)
    _close(m1, m8)


def test_scan_equals_repeated_steps():
    spec, state = _build(None, n_d=2)
    hp = _hp()
    step = jax.jit(functools.partial(make_train_step(spec), axis_name=None))
    s = state
    losses = []
    for _ in range(4):
        s, m = step(s, None, hp)
        losses.append(m["g_loss"])
    scanned, ms = runners.single(make_train_step(spec), scan_steps=4, donate=False)(state, hp)
    _close(s, scanned, atol=1e-6)
    np.testing.assert_allclose(np.asarray(losses), np.asarray(ms["g_loss"]), rtol=1e-6)
    assert int(scanned.step) == 4


def test_vmapped_runs_equal_separate_runs():
    """R runs (different seeds, losses, codings, lrs) as one jit(vmap) == R separate runs."""
    names = ("lsgan", "nsgan", "hinge")
    configs = [
        dict(seed=0, loss_index=0, a=0.0, b=1.0, c=1.0, lr_g=1e-3),
        dict(seed=1, loss_index=0, a=-1.0, b=1.0, c=0.0, lr_g=3e-4),
        dict(seed=2, loss_index=1, a=0.0, b=1.0, c=1.0, lr_g=1e-3),
        dict(seed=3, loss_index=2, a=0.0, b=1.0, c=1.0, lr_g=2e-3),
    ]
    states, hps, singles = [], [], []
    for cfg in configs:
        spec, state = _build(None, loss_names=names, seed=cfg["seed"], update="simultaneous")
        hp = make_hparams(
            lr_g=cfg["lr_g"],
            lr_d=1e-3,
            a=cfg["a"],
            b=cfg["b"],
            c=cfg["c"],
            loss_index=cfg["loss_index"],
        )
        states.append(state)
        hps.append(hp)
        one = runners.single(make_train_step(spec), scan_steps=5, donate=False)
        singles.append(one(state, hp))
    vec = runners.vectorized(make_train_step(spec), scan_steps=5, donate=False)
    vs, vm = vec(stack(states), stack(hps))
    for r, (s, m) in enumerate(singles):
        _close(unstack(vs, r), s, atol=1e-5)
        _close(unstack(vm, r), m, atol=1e-5)
    # Different hyperparameters gave different results.
    assert not np.allclose(vm["g_loss"][0], vm["g_loss"][1])


def test_vectorized_runs_shard_across_devices():
    spec, state = _build(None, update="simultaneous")
    states = stack([state] * 8)
    hps = stack([_hp(a=float(-i) / 8) for i in range(8)])
    mesh = runners.make_mesh(8, axis_name=runners.RUN_AXIS)
    vec = runners.vectorized(make_train_step(spec), scan_steps=2, mesh=mesh, donate=False)
    out, _ = vec(runners.shard_runs(states, mesh), runners.shard_runs(hps, mesh))
    ref, _ = runners.vectorized(make_train_step(spec), scan_steps=2, donate=False)(states, hps)
    _close(out, ref, atol=1e-5)
    assert len(jax.tree.leaves(out)[0].sharding.device_set) == 8
    with pytest.raises(ValueError, match="do not divide"):
        runners.shard_runs(stack([state] * 3), mesh)


def test_learning_rate_is_traced_not_baked_in():
    """One compiled step serves two learning rates (no retrace) and they give different params."""
    spec, state = _build(None)
    step = jax.jit(functools.partial(make_train_step(spec), axis_name=None))
    a, _ = step(state, _batch(), _hp())
    b, _ = step(state, _batch(), make_hparams(lr_g=1e-2, lr_d=2e-3))
    assert step._cache_size() == 1
    assert not np.allclose(jax.tree.leaves(a.g_params)[0], jax.tree.leaves(b.g_params)[0])
    opt = set_learning_rate(state.g_opt, jnp.float32(0.5))
    assert float(opt.hyperparams["learning_rate"]) == 0.5


def test_indivisible_batch_is_a_clear_error():
    spec, _ = _build(runners.DATA_AXIS)
    with pytest.raises(ValueError, match="does not divide across 8 devices"):
        runners.data_parallel(make_train_step(spec), runners.make_mesh(8), global_batch=36)
    with pytest.raises(ValueError, match="does not divide"):
        runners.pmap(make_train_step(spec), global_batch=12)


def test_step_spec_validates():
    spec, _ = _build(None)
    kw = dict(
        g_graphdef=spec.g_graphdef,
        d_graphdef=spec.d_graphdef,
        g_tx=spec.g_tx,
        d_tx=spec.d_tx,
        batch_size=8,
        latent_dim=2,
    )
    with pytest.raises(ValueError, match="update"):
        StepSpec(**kw, update="simultanous")
    with pytest.raises(ValueError, match="lsgan"):
        StepSpec(**kw, loss_names=("lsgam",))
    with pytest.raises(ValueError, match="n_d"):
        StepSpec(**kw, n_d=0)


def test_gradient_norms_and_metrics_are_reported():
    spec, state = _build(None)
    _, m = runners.single(make_train_step(spec), donate=False)(state, _batch(), _hp())
    for key in ("d_loss", "g_loss", "d_grad_norm", "g_grad_norm", "d_real", "d_fake"):
        assert np.isfinite(m[key]) and m[key].shape == ()
    assert m["g_grad_norm"] > 0


def test_hparams_pytree_roundtrip():
    hp = _hp(a=-1.0, c=0.0)
    assert isinstance(hp, Hparams)
    leaves = jax.tree.leaves(hp)
    assert all(x.shape == () for x in leaves)
    assert jax.tree.structure(stack([hp, hp])) == jax.tree.structure(hp)
    assert optax.tree.norm(jnp.ones(3)) > 0


@pytest.mark.parametrize("update", ["alternating", "simultaneous"])
def test_step_matches_a_hand_written_reference(update):
    """One step == the update rules written out with `jax.grad` on the LS losses (SGD, coding
    a, b, c = -1, 1, 0): D descends ½E[(D(x)-b)²] + ½E[(D(G(z))-a)²]; G descends
    ½E[(D'(G(z))-c)²] with D' the updated D (alternating) or the old one (simultaneous); G's
    BatchNorm statistics move once, by the one forward pass on z."""
    g = models.create("pacgan_g", rngs=nnx.Rngs(params=0), hidden=16, depth=2)
    d = models.create("mixture_mlp_d", rngs=nnx.Rngs(params=1), hidden=16)
    sgd = ml_collections.ConfigDict({"name": "sgd", "lr": 0.1})
    g_tx, d_tx = make_optimizer(sgd), make_optimizer(sgd)
    g_def, d_def = nnx.graphdef(g), nnx.graphdef(d)
    spec = StepSpec(g_def, d_def, g_tx, d_tx, BATCH, g.latent_dim, update=update)
    state = init_state(g, d, g_tx, d_tx, jax.random.PRNGKey(3))
    a, b, c, lr_g, lr_d = -1.0, 1.0, 0.0, 0.05, 0.2
    hp = make_hparams(lr_g=lr_g, lr_d=lr_d, a=a, b=b, c=c)
    batch = _batch()
    new, _ = jax.jit(make_train_step(spec))(state, batch, hp)

    # The documented randomness: z from fold_in(rng, step), 2nd of 4 splits, fold_in(., 0).
    k_z = jax.random.split(jax.random.fold_in(state.rng, state.step), 4)[1]
    z = jax.random.normal(jax.random.fold_in(k_z, 0), (BATCH, g.latent_dim))

    def gen(g_params, z):
        m = nnx.merge(g_def, g_params, state.g_rest, copy=True)
        return m(z, train=True), nnx.state(m, nnx.Not(nnx.Param))

    def disc(d_params, x):
        return nnx.merge(d_def, d_params, state.d_rest, copy=True)(x, train=True)

    fake, g_rest = gen(state.g_params, z)

    def d_loss(p):
        return 0.5 * jnp.mean((disc(p, batch["image"]) - b) ** 2) + 0.5 * jnp.mean(
            (disc(p, fake) - a) ** 2
        )

    d_params = jax.tree.map(
        lambda p, gr: p - lr_d * gr, state.d_params, jax.grad(d_loss)(state.d_params)
    )
    d_for_g = d_params if update == "alternating" else state.d_params

    def g_loss(p):
        return 0.5 * jnp.mean((disc(d_for_g, gen(p, z)[0]) - c) ** 2)

    g_params = jax.tree.map(
        lambda p, gr: p - lr_g * gr, state.g_params, jax.grad(g_loss)(state.g_params)
    )
    _close(new.d_params, d_params, atol=1e-6)
    _close(new.g_params, g_params, atol=1e-6)
    _close(new.g_rest, g_rest, atol=1e-6)
    assert not np.allclose(
        jax.tree.leaves(nnx.state(g_rest, nnx.BatchStat))[0],
        jax.tree.leaves(nnx.state(state.g_rest, nnx.BatchStat))[0],
    )


def test_latent_pool_replaces_fresh_latents():
    """`sample_latents=latent_pool_sampler(pool)`: every z of a step is a row of the pool; a
    mixture config with `data.latent_pool_size` trains on the pool `build_mixture` draws from
    `fold_in(PRNGKey(data.dataset_seed), 1)`, and a negative size is a config error."""
    from experiments import mixture as mixture_exp
    from lsgan_jax.training import build
    from lsgan_jax.training.step import latent_pool_sampler, sample_latent

    pool = jax.random.normal(jax.random.PRNGKey(1), (5, 3))
    draw = jax.jit(latent_pool_sampler(pool), static_argnums=1)(jax.random.PRNGKey(2), 64)
    dist = np.abs(np.asarray(draw)[:, None, :] - np.asarray(pool)[None]).sum(-1)
    assert draw.shape == (64, 3) and np.all(dist.min(axis=1) == 0)
    assert len({int(i) for i in dist.argmin(axis=1)}) == 5  # uses the whole pool
    with pytest.raises(ValueError, match="latent pool"):
        latent_pool_sampler(jnp.zeros((3,)))

    c = mixture_exp.get_config("smoke")
    c.data.latent_pool_size = 3
    _, spec, states, hps, _, _ = build.build_mixture(c)
    state = unstack(states, 0)
    new, _ = jax.jit(make_train_step(spec))(state, None, unstack(hps, 0))
    assert int(new.step) == 1
    expected_pool = np.asarray(
        sample_latent(
            jax.random.fold_in(jax.random.PRNGKey(c.data.dataset_seed), 1),
            3,
            spec.latent_dim,
            spec.latent_dist,
        )
    )
    k_z = jax.random.split(jax.random.fold_in(state.rng, state.step), 4)[1]
    z = np.asarray(spec.sample_latents(jax.random.fold_in(k_z, 0), spec.batch_size))
    dist = np.abs(z[:, None, :] - expected_pool[None]).sum(-1)
    assert np.all(dist.min(axis=1) == 0)  # every latent is a row of the configured pool
    assert len(set(dist.argmin(axis=1).tolist())) == 3
    assert mixture_exp.get_config("welfert").data.latent_pool_size == 50_000
    c.data.latent_pool_size = -1
    with pytest.raises(ValueError, match="latent_pool_size"):
        build.build_mixture(c)

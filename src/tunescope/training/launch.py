"""What the launcher asked for, done or refused: N CPU processes, and FSDP on them.

CPU scale-out, the commands that work (tests/integration/test_accelerate_launch.py, test_fsdp_cli.py):

    accelerate launch --multi_gpu --num_processes 2 -m tunescope finetune ...      # DDP over gloo
    accelerate launch --use_fsdp --fsdp_version 2 --fsdp_state_dict_type FULL_STATE_DICT --num_processes 2 \\
        -m tunescope finetune ...                                                   # FSDP2 over gloo
    torchrun --standalone --nproc_per_node 2 -m tunescope finetune ...              # DDP over gloo

Two ways accelerate 1.15 quietly does less than it was asked, both handled here:

1. `accelerate launch --cpu --num_processes N` starts ONE process. `--cpu` selects accelerate's simple launcher
   (commands/launch.py `launch_command`), which starts several processes only through MPI (`--mpirun_hostfile`);
   without it, it runs the script once with MASTER_ADDR / MASTER_PORT set (because N > 1) and ACCELERATE_USE_CPU,
   but no WORLD_SIZE or RANK (utils/launch.py `prepare_simple_launcher_cmd_env`), so that one process trains alone
   on all the data. `--multi_gpu` (without `--cpu`) goes through torchrun; on a machine without an accelerator the
   Trainer then runs with use_cpu and the N processes join one gloo group. `refuse_lone_cpu_launch` turns the
   first case into exit 2 naming the working command.
2. `accelerate launch --use_fsdp` on CPU processes trains with DDP: AcceleratorState turns FSDP on only inside its
   branch for accelerator device types (MULTI_GPU, MULTI_NPU, ...; state.py), so CPU processes stay MULTI_CPU and
   the Trainer wraps the model in DDP. torch's FSDP2 (`fully_shard`) runs on CPU tensors over gloo, so
   `enable_cpu_fsdp` hands accelerate's own FSDP2 path the CPU processes: the FullyShardedDataParallelPlugin that
   accelerate would build from the launcher's FSDP_* variables, and distributed type FSDP in both of accelerate's
   shared states (every `AcceleratorState()` copies PartialState's state over its own, so setting it on the
   AcceleratorState alone is undone at the next construction).
"""

from __future__ import annotations

import os

from tunescope.errors import UserError

# The launchers' world-size variables: torchrun / accelerate (WORLD_SIZE) and the MPI flavours accelerate reads.
WORLD_SIZE_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
CPU_DDP_COMMAND = "accelerate launch --multi_gpu --num_processes N -m tunescope ..."
CPU_FSDP_COMMAND = ("accelerate launch --use_fsdp --fsdp_version 2 --fsdp_state_dict_type FULL_STATE_DICT "
                    "--num_processes N -m tunescope ...")


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def lone_cpu_launch() -> bool:
    """True in the one process `accelerate launch --cpu --num_processes N` (N > 1, no MPI) starts: accelerate's
    simple launcher set ACCELERATE_USE_CPU and MASTER_ADDR, and no launcher set a world size."""
    return (_flag("ACCELERATE_USE_CPU") and "MASTER_ADDR" in os.environ
            and not any(v in os.environ for v in WORLD_SIZE_VARIABLES))


def refuse_lone_cpu_launch() -> None:
    """UserError (exit 2) in the process of `accelerate launch --cpu --num_processes N`, before any work."""
    if lone_cpu_launch():
        raise UserError("bad launch 'accelerate launch --cpu --num_processes N': accelerate starts one process for "
                        "it (its --cpu launcher starts several only through MPI, --mpirun_hostfile), which would "
                        f"train alone on all the data; for N CPU processes use '{CPU_DDP_COMMAND}' (or torchrun "
                        "--nproc_per_node N), for one process drop --num_processes")


def fsdp_requested() -> bool:
    """The launcher asked for FSDP (`accelerate launch --use_fsdp` or an accelerate config with FSDP)."""
    return _flag("ACCELERATE_USE_FSDP")


def enable_cpu_fsdp(trainer) -> bool:
    """Turn accelerate's FSDP2 on for CPU processes that asked for FSDP (see the module docstring); True if it did.

    Call right after the Trainer created its Accelerator (StrategyTrainer.create_accelerator_and_postprocess).
    """
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    state = trainer.accelerator.state
    if not fsdp_requested() or state.distributed_type != DistributedType.MULTI_CPU:
        return False
    plugin = FullyShardedDataParallelPlugin()  # from the FSDP_* variables the launcher set, as accelerate would
    if plugin.fsdp_version != 2:
        raise UserError(f"bad value {plugin.fsdp_version} for --fsdp_version on CPU processes: accepted 2 (FSDP2, "
                        f"torch's fully_shard, runs over gloo; FSDP1 needs an accelerator): {CPU_FSDP_COMMAND}")
    state.fsdp_plugin = plugin
    state.distributed_type = PartialState._shared_state["distributed_type"] = DistributedType.FSDP
    trainer.is_fsdp_enabled = True  # what the Trainer derives from the state right after creating it
    return True


def check_fsdp(trainer) -> None:
    """Refuse (exit 2) what tunescope cannot do under FSDP, before any training step."""
    if not trainer.is_fsdp_enabled:
        return
    plugin = trainer.accelerator.state.fsdp_plugin
    if "FULL_STATE_DICT" not in str(plugin.state_dict_type):
        # With a sharded state dict the Trainer's save_model writes nothing: the run would end without its model.
        raise UserError(f"bad value {str(plugin.state_dict_type).split('.')[-1]} for --fsdp_state_dict_type: "
                        "accepted FULL_STATE_DICT (the run keeps its trained model in checkpoints/final as one "
                        f"safetensors or adapter folder): {CPU_FSDP_COMMAND}")
    ignored = getattr(trainer.model, "_ddp_params_and_buffers_to_ignore", None)
    if ignored:
        # SIFT reduces the gradients of its target weights itself (DDP is told to ignore them); FSDP2 would shard
        # those weights, so its gradient hooks and sparse writes would never see them.
        raise UserError(f"bad combination: this strategy reduces the gradients of {len(ignored)} of its own "
                        f"parameters (e.g. {ignored[0]!r}; sift does), which FSDP would shard; run it with DDP: "
                        f"'{CPU_DDP_COMMAND}' or torchrun")


def prepare_launch(trainer) -> None:
    """Everything above, for a Trainer that has just created its Accelerator."""
    refuse_lone_cpu_launch()
    enable_cpu_fsdp(trainer)
    check_fsdp(trainer)

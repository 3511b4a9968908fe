using Engine.Plans.PlanFile;

namespace Engine.Plans.Tiering;

/// <summary>Per-token time of a layer by tier (docs/plan-format.md "prediction"): a resident layer costs reading
/// its weights from device memory; a streamed layer costs the slower of its transfer and its compute, which is
/// bounded by reading the weights from the slot (transfers overlap compute on a second stream).</summary>
public sealed record CostModel(double DeviceBandwidth, double H2dBandwidth, double NvmeBandwidth)
{
    public double Seconds(Tier tier, long imageBytes, long weightBytes) => tier switch
    {
        Tier.A => weightBytes / DeviceBandwidth,
        Tier.B => Math.Max(imageBytes / H2dBandwidth, weightBytes / DeviceBandwidth),
        Tier.C => Math.Max(Math.Max(imageBytes / NvmeBandwidth, H2dBandwidth > 0 ? imageBytes / H2dBandwidth : 0), weightBytes / DeviceBandwidth),
        _ => 0,
    };
}

